"""Two gloo ranks of MoCo equal one process with the global batch; shuffle-BN.

The ranks run as separate Python processes (``moco_worker.py``), because
spawned children cannot import the test modules by name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Three Python processes start and import torch: about 20 s on a shared CPU.
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("moco_worker.py")
WORLD_SIZE = 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(case: str, folder: Path) -> list[dict]:
    """Run ranks 0 and 1 of a case in a gloo group and return each rank's result."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The free port is released before the ranks bind it, so another program
    # can take it in between: try up to three ports.
    for attempt in range(3):
        port = str(free_port())
        outputs = [folder / f"{case}-{rank}.pt" for rank in range(WORLD_SIZE)]
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    case,
                    str(rank),
                    str(WORLD_SIZE),
                    port,
                    str(outputs[rank]),
                ],
                env=environment,
                stderr=subprocess.PIPE,
            )
            for rank in range(WORLD_SIZE)
        ]
        errors = []
        for process in processes:
            _, err = process.communicate(timeout=120)
            if process.returncode != 0:
                errors.append(err.decode())
        if not errors:
            return [torch.load(path, weights_only=True) for path in outputs]
        if attempt == 2 or "address already in use" not in "".join(errors).lower():
            pytest.fail(f"a rank failed:\n{errors[0][-3000:]}")
    raise AssertionError("unreachable")


def run_single(case: str, folder: Path) -> dict:
    output = folder / f"{case}-single.pt"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [sys.executable, str(WORKER), case, "-1", "1", "0", str(output)],
        env=environment,
        capture_output=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr.decode()[-3000:]
    return torch.load(output, weights_only=True)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moco")
    return {
        "single": run_single("step", folder)["step"],
        "ranks": run_ranks("all", folder),
    }


@pytest.fixture(scope="module")
def step_results(results):
    return {
        "single": results["single"],
        "ranks": [rank["step"] for rank in results["ranks"]],
        "per_rank": [rank["step_per_rank"] for rank in results["ranks"]],
    }


@pytest.fixture(scope="module")
def shuffle_results(results):
    return [rank["shuffle"] for rank in results["ranks"]]


def test_two_ranks_equal_one_process(step_results):
    expected = step_results["single"]
    for rank, actual in enumerate(step_results["ranks"]):
        assert actual.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(
                actual[key], expected[key], rtol=0, atol=1e-10, msg=f"rank {rank} {key}"
            )


def test_queue_wrapped_in_step_test(step_results):
    # 3 steps of 8 keys into a queue of 12: the pointer went 8, 4, 0.
    assert int(step_results["single"]["queue_ptr"]) == 0


def test_per_rank_objective_differs(step_results):
    # gather=false evaluates the objective per rank, as the reference MoCo does,
    # so its update differs from one process: the comparison above can fail.
    expected = step_results["single"]
    actual = step_results["per_rank"][0]
    gradients = [key for key in expected if key.startswith("grad0.")]
    largest = max(float((actual[k] - expected[k]).abs().max()) for k in gradients)
    assert largest > 1e-6


def test_ranks_keep_equal_queues(step_results):
    first, second = step_results["per_rank"]
    assert torch.equal(first["queue"], second["queue"])
    assert torch.equal(first["queue_ptr"], second["queue_ptr"])


def test_shuffle_mixes_rows_across_ranks(shuffle_results):
    seen = [result["seen"].long().tolist() for result in shuffle_results]
    assert sorted(seen[0] + seen[1]) == list(range(8))
    # Rank 0 owns rows 0-3; its key encoder saw rows of rank 1 too.
    assert set(seen[0]) != {0, 1, 2, 3}


def test_shuffle_returns_original_order(shuffle_results):
    for rank, result in enumerate(shuffle_results):
        ids = result["keys"][:, 0].long().tolist()
        assert ids == list(range(rank * 4, rank * 4 + 4))


def test_shuffle_normalizes_over_permuted_rows(shuffle_results):
    inputs = shuffle_results[0]["inputs"]
    features = inputs[:, 1:]
    expected = {}
    for result in shuffle_results:
        rows = result["seen"].long()
        group = features[rows]
        standardized = (group - group.mean(0)) / group.std(0)
        for row, value in zip(rows.tolist(), standardized, strict=True):
            expected[row] = value
    for rank, result in enumerate(shuffle_results):
        for offset, key in enumerate(result["keys"]):
            torch.testing.assert_close(key[1:], expected[rank * 4 + offset])
