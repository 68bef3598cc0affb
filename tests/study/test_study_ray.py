"""Real local Ray studies: two tiny trials, a kill or Ctrl-C and resume, the lock."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from alignsphere.cli.main import main

pytestmark = pytest.mark.slow

TINY = """
name: tiny
base: digits
overrides: {{heldout.num_images: 64}}
grid:
  objective: {objectives}
  seed: [0]
  max_epochs: [1]
evaluation: {{probe: fast, knn_k: 5, heldout_images: 128}}
"""


def write_study(tmp_path: Path, objectives: list[str]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(TINY.format(objectives=json.dumps(objectives)))
    return path


def study_command(config: Path, output: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "alignsphere.cli.main",
        "study",
        "--config",
        str(config),
        "--output",
        str(output),
        "--num-cpus",
        "2",
        "--no-progress",
    ]


def test_two_trials_on_local_ray(tmp_path, capsys):
    config = write_study(
        tmp_path, ["1*align(alpha=2) + 1*uniform(t=2)", "1*contrastive(tau=0.2)"]
    )
    output = tmp_path / "study"
    code = main(
        [
            "study",
            "--config",
            str(config),
            "--output",
            str(output),
            "--num-cpus",
            "2",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    results = pd.read_csv(output / "report" / "results.csv")
    assert len(results) == 2
    assert set(results["family"]) == {"align+uniform", "contrastive"}
    assert results["linear_acc"].between(0, 1).all()
    assert results["uniform"].lt(0).all()
    assert (output / "report" / "results.parquet").is_file()
    assert (output / "report" / "align_uniform.png").is_file()
    assert "too few to judge" in printed
    # A second run finds both trials finished and runs none.
    assert (
        main(
            ["study", "--config", str(config), "--output", str(output), "--no-progress"]
        )
        == 0
    )
    assert "0 trials run now, 2 already finished" in capsys.readouterr().out


def test_killed_study_resumes_without_loss_or_repeat(tmp_path):
    objectives = [
        "1*align(alpha=2) + 1*uniform(t=2)",
        "1*contrastive(tau=0.2)",
        "1*align(alpha=2) + 0.5*uniform(t=2)",
        "1*contrastive(tau=0.5)",
    ]
    config = write_study(tmp_path, objectives)
    output = tmp_path / "study"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        study_command(config, output) + ["--num-cpus", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    results = output / "results"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(results.glob("*.json"))) < 1:
        time.sleep(0.5)
    finished_before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert finished_before, "no trial finished within 300 s"

    # A second study on the same folder while the first runs: rejected.
    second = subprocess.run(
        study_command(config, output), env=env, capture_output=True, text=True
    )
    assert second.returncode == 2
    assert "another study is running" in second.stderr

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    finished_before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert len(finished_before) < len(objectives), "the study finished before the kill"

    resumed = subprocess.run(
        study_command(config, output), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(finished_before)} already finished" in resumed.stdout
    after = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert len(after) == len(objectives)
    for name, content in finished_before.items():
        assert after[name] == content, f"{name} was rerun"
    table = pd.read_csv(output / "report" / "results.csv")
    assert sorted(table["trial_id"]) == sorted(Path(n).stem for n in after)
    assert not list(results.glob(".*.tmp"))


def running_trial(output: Path) -> str | None:
    """Return the id of a trial that has a run folder but no result file yet."""
    finished = {p.stem for p in (output / "results").glob("*.json")}
    for config in sorted((output / "trials").glob("*/config.yaml")):
        if config.parent.name not in finished:
            return config.parent.name
    return None


def test_ctrl_c_while_ray_starts(tmp_path, interrupt_when):
    """Ctrl-C half a second after the study's first line exits 130 and resumes.

    At that moment the study is importing Ray or inside ``ray.init``. On
    2 CPU cores, importing Ray and Tune took 1.0 s and ``ray.init`` 2.6 s.
    SIGINTs sent 0 to 3.5 s after the first line all gave exit 130 and the
    single interrupt line. Ray's dashboard and runtime-env agents, whose
    raylet the SIGINT killed, outlived the study by about a minute.
    """
    config = write_study(tmp_path, ["1*align(alpha=2) + 1*uniform(t=2)"])
    output = tmp_path / "study"
    command = study_command(config, output)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def started(stdout_path):
        return "trials in" in stdout_path.read_text()

    code, err = interrupt_when(command, env, started, timeout=120, delay=0.5)
    assert code == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("alignsphere study")]
    assert len(lines) == 1, err[-3000:]
    assert "interrupted" in lines[0]
    assert "Traceback" not in err
    assert not list((output / "results").glob("*.json"))

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 trials run now, 0 already finished" in resumed.stdout


def test_ctrl_c_during_trial_resumes(tmp_path, interrupt_when):
    """Ctrl-C while a trial runs exits 130, keeps finished results, and resumes.

    SIGINT goes to the study's whole process group, as a terminal's Ctrl-C
    does. Before the fix, Ray Tune caught it, so the study built a report of
    the finished trials, printed Tune's Tuner.restore hint and exited 1.
    """
    objectives = [
        "1*align(alpha=2) + 1*uniform(t=2)",
        "1*contrastive(tau=0.2)",
        "1*align(alpha=2) + 0.5*uniform(t=2)",
    ]
    config = write_study(tmp_path, objectives)
    output = tmp_path / "study"
    results = output / "results"
    command = study_command(config, output) + ["--num-cpus", "1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def one_finished_one_running(stdout_path):
        return bool(list(results.glob("*.json"))) and running_trial(output) is not None

    code, err = interrupt_when(command, env, one_finished_one_running, poll=0.2)
    assert code == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("alignsphere study")]
    assert len(lines) == 1, err[-3000:]
    assert "interrupted" in lines[0]
    assert str(results) in lines[0]
    rerun = shlex.join(["alignsphere", *command[3:]])
    assert lines[0].endswith(f"rerun: {rerun}")
    assert "Traceback" not in err

    finished = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert 1 <= len(finished) < len(objectives), "the study finished before Ctrl-C"
    for name, content in finished.items():
        row = json.loads(content)
        assert row["trial_id"] == Path(name).stem
        assert 0 <= row["linear_acc"] <= 1
    assert not [p.name for p in results.iterdir() if p.suffix != ".json"]

    resumed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(finished)} already finished" in resumed.stdout
    after = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert len(after) == len(objectives)
    for name, content in finished.items():
        assert after[name] == content, f"{name} was rerun"
    assert not [p.name for p in results.iterdir() if p.suffix != ".json"]
