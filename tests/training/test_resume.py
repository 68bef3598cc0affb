"""A run killed with SIGKILL mid-epoch resumes to the weights of an unbroken run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

# Runs train() on digits with a callback that records the position of every
# finished batch and sleeps 20 ms, so the test can kill the process at a known
# point of the second epoch.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path

    import lightning as L

    from alignsphere.training import load_config, train


    class Pace(L.Callback):
        def __init__(self, path):
            self.path = Path(path)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.path.write_text(f"{trainer.current_epoch} {batch_idx}")
            time.sleep(0.02)


    output, position = sys.argv[1], sys.argv[2]
    config = load_config(
        "digits",
        [
            "trainer.max_epochs=3",
            "trainer.num_threads=1",
            "optim.batch_size=64",
            "optim.schedule=step",
            "optim.milestones=[2]",
            "heldout.num_images=100",
        ],
    )
    train(config, output, progress_bar=False, callbacks=[Pace(position)])
    """
)

KILL_EPOCH = 1
KILL_AFTER_BATCH = 5


def start(script, output, position):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(output), str(position)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def read_position(path):
    try:
        epoch, batch = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(epoch), int(batch)


@pytest.mark.slow
def test_resume_after_sigkill_matches_unbroken_run(tmp_path):
    script = tmp_path / "train_digits.py"
    script.write_text(TRAIN_SCRIPT)

    reference = start(script, tmp_path / "reference", tmp_path / "reference.pos")
    killed_dir = tmp_path / "killed"
    position = tmp_path / "killed.pos"
    process = start(script, killed_dir, position)
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        at = read_position(position)
        if at is not None and at >= (KILL_EPOCH, KILL_AFTER_BATCH) and last.is_file():
            break
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.005)
    else:
        pytest.fail("the run never reached the second epoch")
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = read_position(position)
    assert killed_at[0] == KILL_EPOCH, "the kill must land inside the second epoch"
    assert not (killed_dir / "encoder.pt").exists()
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == KILL_EPOCH - 1

    resumed = start(script, killed_dir, position)
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read().decode()[-2000:]
    assert reference.wait(timeout=180) == 0, reference.stderr.read().decode()[-2000:]

    expected = torch.load(tmp_path / "reference" / "encoder.pt", weights_only=True)
    actual = torch.load(killed_dir / "encoder.pt", weights_only=True)
    assert expected["state_dict"].keys() == actual["state_dict"].keys()
    # Tolerance 1e-5 on weights of order 0.1: the data order and the views
    # depend only on (seed, epoch, batch) and the run uses one CPU thread, so
    # the runs usually agree bit for bit.
    # NOTE: one full-suite run on a loaded machine saw a mismatch in the last
    # digits, and its cause is unconfirmed. A suspect is BLAS kernels that
    # round differently for buffers at other memory alignments.
    identical = 0
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(
            actual["state_dict"][key], value, rtol=0, atol=1e-5, msg=key
        )
        identical += torch.equal(actual["state_dict"][key], value)
    print(f"{identical} of {len(expected['state_dict'])} tensors equal bit for bit")
    final = torch.load(killed_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == 2
    assert final["lr_schedulers"][0]["last_epoch"] == 3
