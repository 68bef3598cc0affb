"""Measure how busy the default digits study keeps the cores, and its overhead.

Runs ``alignsphere study`` (the bundled digits study, 20 trials) into a fresh
folder and compares, in the same run:

- the study's wall time against the sum of its trials' own times (training
  plus evaluation, measured inside each trial): with C cores, a study that keeps
  them busy has ``sum / (wall * C)`` near 1;
- the per-trial overhead of the study machinery, ``(wall * C - sum) / trials``
  (Ray start-up, worker start-up and imports, scheduling, result writing),
  against a trial's own training time.

Usage:
    python benchmarks/study_overhead.py [--output docs/benchmarks/study.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits")
    parser.add_argument("--output", default="docs/benchmarks/study.md")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        command = [
            sys.executable,
            "-m",
            "alignsphere.cli.main",
            "study",
            "--config",
            args.config,
            "--output",
            str(folder),
            "--no-progress",
        ]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"study failed:\n{proc.stdout}\n{proc.stderr}")
        rows = [json.loads(p.read_text()) for p in (folder / "results").glob("*.json")]
        report = proc.stdout

    n = len(rows)
    trial = sum(r["trial_seconds"] for r in rows)
    train = sum(r["train_seconds"] for r in rows)
    evaluation = sum(r["eval_seconds"] for r in rows)
    utilisation = trial / (wall * cores)
    overhead = (wall * cores - trial) / n
    summary = {
        "trials": n,
        "cores": cores,
        "wall_s": wall,
        "sum_trial_s": trial,
        "sum_train_s": train,
        "sum_eval_s": evaluation,
        "utilisation": utilisation,
        "overhead_per_trial_s": overhead,
        "mean_train_s": train / n,
    }
    print(json.dumps(summary, indent=2))
    write_page(Path(args.output), summary, args, report)


def write_page(path: Path, s: dict, args, report: str) -> None:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    lines = [
        "# Study benchmark",
        "",
        f"Machine: {model}, {s['cores']} cores, Python {platform.python_version()}.",
        "",
        "Command:",
        "",
        "```",
        "python benchmarks/study_overhead.py " + " ".join(sys.argv[1:]),
        "```",
        "",
        f"It runs `alignsphere study --config {args.config}` into a fresh folder "
        "and reads the trials' own times from their result files.",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| trials | {s['trials']} |",
        f"| study wall time | {s['wall_s']:.0f} s |",
        f"| sum of the trials' own times (training + evaluation) | {s['sum_trial_s']:.0f} s |",
        f"| of which training | {s['sum_train_s']:.0f} s |",
        f"| of which evaluation | {s['sum_eval_s']:.0f} s |",
        f"| core utilisation, sum / (wall x {s['cores']} cores) | {100 * s['utilisation']:.0f} % |",
        f"| overhead per trial, (wall x cores - sum) / trials | {s['overhead_per_trial_s']:.1f} s |",
        f"| a trial's own training time, mean | {s['mean_train_s']:.1f} s |",
        "",
        "The overhead covers Ray's start-up (once per study), starting a worker",
        "process for each trial and importing torch and Lightning in it,",
        "scheduling, and writing each result file.",
        "",
        "The study's own output in that run:",
        "",
        "```",
        report.strip(),
        "```",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
