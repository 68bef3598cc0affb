"""Two gloo ranks running the training step equal one process with the global batch.

The ranks run as separate Python processes (a script written to a temporary
folder), because spawned children cannot import the test modules by name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.slow

WORLD_SIZE = 2

# Usage: script.py OUTPUT RANK WORLD_SIZE PORT. RANK -1 runs one process on the
# whole batch; ranks 0..W-1 join a gloo group and wrap the encoder in DDP. Each
# run takes two SGD steps of HypersphereModule.compute_objective on precomputed
# views (no augmentation, so every process sees the same pixels), once with
# gather=true and once with gather=false, and saves the encoder weights.
WORKER_SCRIPT = textwrap.dedent(
    """
    import sys

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from alignsphere.training import HypersphereModule, build_optimizer, load_config

    GLOBAL_BATCH = 16
    STEPS = 2
    OBJECTIVE = "1*align(alpha=2) + 1*uniform(t=2) + 0.5*contrastive(tau=0.2)"

    output, rank, world_size, port = sys.argv[1], *map(int, sys.argv[2:])
    torch.set_num_threads(1)
    if rank >= 0:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
        )
        per_rank = GLOBAL_BATCH // world_size
        rows = slice(rank * per_rank, (rank + 1) * per_rank)
    else:
        rows = slice(None)

    generator = torch.Generator().manual_seed(1)
    views = [
        (
            torch.rand(GLOBAL_BATCH, 1, 8, 8, generator=generator),
            torch.rand(GLOBAL_BATCH, 1, 8, 8, generator=generator),
        )
        for _ in range(STEPS)
    ]
    results = {}
    for gather in (True, False):
        # norm=none: no batch norm, whose per-rank statistics differ by design.
        config = load_config(
            "digits",
            [
                "model.options.norm=none",
                f"objective={OBJECTIVE}",
                f"gather={str(gather).lower()}",
                f"optim.batch_size={GLOBAL_BATCH}",
            ],
        )
        torch.manual_seed(0)
        module = HypersphereModule(config)
        if rank >= 0:
            module.encoder = DistributedDataParallel(module.encoder)
        optimizer, _ = build_optimizer(module.encoder.parameters(), config)
        for view1, view2 in views:
            output_terms = module.compute_objective(view1[rows], view2[rows])
            optimizer.zero_grad()
            output_terms.total.backward()
            optimizer.step()
        encoder = module.encoder
        if rank >= 0:
            encoder = encoder.module
        results[gather] = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    if rank <= 0:
        torch.save(results, output)
    if rank >= 0:
        dist.destroy_process_group()
    """
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "worker.py"
    script.write_text(WORKER_SCRIPT)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {
        "single": (folder / "single.pt", "-1"),
        "ddp": (folder / "ddp.pt", "0"),
        "rank1": (folder / "unused.pt", "1"),
    }
    # The free port is released before the ranks bind it, so another program
    # can take it in between: try up to three ports.
    for attempt in range(3):
        port = str(free_port())
        processes = [
            subprocess.Popen(
                [sys.executable, str(script), str(path), rank, str(WORLD_SIZE), port],
                env=environment,
                stderr=subprocess.PIPE,
            )
            for path, rank in runs.values()
        ]
        failed = []
        for process in processes:
            _, err = process.communicate(timeout=180)
            if process.returncode != 0:
                failed.append(err.decode())
        if not failed:
            break
        if attempt == 2 or "address already in use" not in "".join(failed).lower():
            pytest.fail(f"a worker failed:\n{failed[0][-3000:]}")
    return {
        name: torch.load(path, weights_only=True)
        for name, (path, _) in runs.items()
        if name != "rank1"
    }


def test_two_ranks_equal_one_process(results):
    expected = results["single"][True]
    actual = results["ddp"][True]
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=1e-6)


def test_per_rank_negatives_differ(results):
    # gather=false computes uniformity and the contrastive loss per rank, as the
    # reference implementations do, so the update differs from one process: this
    # shows that the comparison above can fail.
    expected = results["single"][True]
    actual = results["ddp"][False]
    largest = max(float((actual[k] - expected[k]).abs().max()) for k in expected)
    assert largest > 1e-4


def test_single_process_ignores_gather(results):
    # Outside a process group there is nothing to gather.
    for key, value in results["single"][True].items():
        assert torch.equal(results["single"][False][key], value)


def test_torchrun_trains_with_two_processes(tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        "-m",
        "alignsphere.cli.main",
        "train",
        "--config",
        "digits",
        "--output",
        str(output),
        "--no-progress",
        "--set",
        "trainer.max_epochs=1",
        "--set",
        "trainer.devices=2",
        "--set",
        "trainer.strategy=ddp",
        "--set",
        "trainer.accelerator=cpu",
        "--set",
        "optim.batch_size=128",
        "--set",
        "heldout.num_images=100",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command, env=environment, capture_output=True, timeout=240
    )
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]
    assert (output / "encoder.pt").is_file()
    checkpoint = torch.load(output / "checkpoints" / "last.ckpt", weights_only=True)
    # 1,347 images in global batches of 128: 10 steps, 64 images per rank each.
    assert checkpoint["global_step"] == 10
    metrics = next((output / "csv").glob("version_*/metrics.csv")).read_text()
    assert "heldout/align" in metrics.splitlines()[0]
