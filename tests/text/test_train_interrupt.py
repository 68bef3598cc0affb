"""Ctrl-C (SIGINT) on ``alignsphere train`` of a GRU text encoder, then a resume."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest
import torch

from alignsphere.training.run import find_resume_checkpoint

MAX_EPOCHS = 40
OVERRIDES = [
    "data.options.max_sentences=600",
    "data.train_limit=256",
    "optim.batch_size=64",
    "model.out_dim=32",
    "model.options.embedding_dim=16",
    f"trainer.max_epochs={MAX_EPOCHS}",
    "trainer.num_threads=1",
    "heldout.num_images=20",
]
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_ctrl_c_text_training_resumes(tmp_path, gutenberg_dir, interrupt_when):
    """SIGINT after the first epoch: exit 130, one resume line, and a resume."""
    output = tmp_path / "run"
    arguments = ["train", "--config", "gutenberg_gru_cpu", "--output", str(output)]
    arguments += ["--data-root", str(gutenberg_dir), "--no-progress"]
    for override in OVERRIDES:
        arguments += ["--set", override]
    command = [sys.executable, "-m", "alignsphere.cli.main", *arguments]
    last = output / "checkpoints" / "last.ckpt"

    code, err = interrupt_when(
        command, ENVIRONMENT, lambda _: last.is_file(), timeout=180
    )
    assert code == 130, err[-3000:]
    lines = [line for line in err.splitlines() if "interrupt" in line.lower()]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("alignsphere train: interrupted")
    assert str(output / "checkpoints") in lines[0]
    assert lines[0].endswith(f"rerun: {shlex.join(['alignsphere', *arguments])}")
    assert "Traceback" not in err
    interrupted_epoch = torch.load(last, weights_only=True)["epoch"]
    assert interrupted_epoch < MAX_EPOCHS - 1, "the run finished before SIGINT"
    assert not (output / "encoder.pt").exists()

    # last.ckpt, or epoch=NNN.ckpt if the SIGINT landed between their renames.
    resume = find_resume_checkpoint(output)
    resumed = subprocess.run(
        command, env=ENVIRONMENT, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"resuming from {resume}" in resumed.stdout
    assert torch.load(last, weights_only=True)["epoch"] == MAX_EPOCHS - 1
    assert (output / "encoder.pt").is_file()
    # Each start writes its own csv/version_N folder, so a resume adds one.
    assert sorted(p.name for p in (output / "csv").iterdir()) == [
        "version_0",
        "version_1",
    ]
