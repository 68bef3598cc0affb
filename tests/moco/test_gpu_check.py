"""The GPU check runs on CPU in a smoke configuration, without Lightning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"

RUNNER = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("gpu_check", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(sys.argv[3:] + ["--json", sys.argv[2]])
    banned = sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("lightning", "pytorch_lightning", "torchmetrics", "ray")
    )
    print(json.dumps({"code": code, "banned": banned}))
    """
)


def test_smoke_run_on_cpu(tmp_path):
    output = tmp_path / "result.json"
    environment = {
        key: value
        for key, value in os.environ.items()
        if key != "ALIGNSPHERE_TEST_DATA"
    }
    environment["OMP_NUM_THREADS"] = "1"
    arguments = [
        "--steps", "2", "--warmup", "0", "--device", "cpu", "--batch-size", "8",
        "--queue-size", "64", "--image-size", "32", "--arch", "resnet18",
        "--pool", "32",
    ]  # fmt: skip
    finished = subprocess.run(
        [sys.executable, "-c", RUNNER, str(SCRIPT), str(output), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    assert summary["code"] == 0
    assert summary["banned"] == []
    result = json.loads(output.read_text())
    assert result["steps"] == 2
    assert result["queue_ptr"] == 16
    assert result["images_per_second"] > 0
    assert "synthetic" in result["images"]
