"""Benchmark ``alignsphere measure`` on a large .npy file, and exact uniformity.

Two parts, each in child processes so that their memory is measured apart:

1. ``alignsphere measure`` on N x d float32 embeddings (default 1,000,000 x
   384, 1.5 GB) written to a temporary folder, with 500,000 positive pairs
   from an index file and sampled uniformity. The child runs under
   ``/usr/bin/time -v``, whose "Maximum resident set size" is the peak memory of
   the whole process as the operating system reports it. The same is measured
   for ``python -c "import torch"`` as the floor any torch program pays.
   The per-metric times come from the report's JSON.
2. Exact uniformity of the first 100,000 rows against the compute floor,
   timed in the same child. The floor forms all N^2 entries of ``x @ x.T``
   strip by strip and exponentiates them in place, nothing else; it is the
   fastest of strips of 256, 1024 and 4096 rows. Exact uniformity visits each
   pair once (the upper triangle), so it can beat that floor.

The results go to a Markdown page that names the machine and the commands.

Usage:
    python benchmarks/measure_large.py [--rows 1000000] [--dim 384]
        [--exact-rows 100000] [--folder /tmp/alignsphere-measure-bench]
        [--output docs/benchmarks/measure.md] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

SEED = 0
# Peak resident memory allowed for measure on embedding files: 1 GB.
MEMORY_LIMIT_BYTES = 10**9


def write_embeddings(path: Path, rows: int, dim: int) -> None:
    """Write ``rows`` float32 rows in which rows 2k and 2k + 1 are positives.

    Rows are Gaussian with a power-law spectrum (scale k^-0.5 along axis k)
    plus a common offset, so the spectrum and the mean cosine are not those of
    isotropic noise. Row 2k + 1 is row 2k plus noise of 0.3 times its scale.
    """
    import numpy as np

    generator = np.random.default_rng(SEED)
    scales = (np.arange(1, dim + 1, dtype=np.float32) ** -0.5).astype(np.float32)
    offset = 0.2 * generator.standard_normal(dim).astype(np.float32)
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(rows, dim)
    )
    chunk = 65536
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        base = (
            generator.standard_normal((size, dim), dtype=np.float32) * scales + offset
        )
        noise = 0.3 * generator.standard_normal((size, dim), dtype=np.float32) * scales
        base[1::2] = base[0::2][: size // 2] + noise[1::2][: size // 2]
        out[start : start + size] = base
    out.flush()
    del out


def write_pairs(path: Path, rows: int) -> None:
    """Write the index of positive pairs (2k, 2k + 1) as an int64 .npy file."""
    import numpy as np

    first = np.arange(0, rows - 1, 2, dtype=np.int64)
    np.save(path, np.stack([first, first + 1], axis=1))


def run_timed(command: list[str]) -> dict:
    """Run ``command`` under /usr/bin/time -v and return its peak memory and times."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(command)} failed with exit code {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return {
        "max_rss_kib": int(match.group(1)),
        "wall_s": wall,
        "stdout": result.stdout,
    }


EXACT_CHILD = r"""
import json, sys, time
import numpy as np
import torch
from alignsphere.measure import RowSegment, RowSet, open_embeddings
from alignsphere.metrics import uniformity

path, rows = sys.argv[1], int(sys.argv[2])
with open_embeddings(path) as array:
    x = RowSet([RowSegment(array, np.arange(rows))]).load()
result = {"rows": rows, "dim": x.shape[1], "threads": torch.get_num_threads()}

uniformity(x[:2048], 2.0)  # warm up the kernels
started = time.perf_counter()
result["uniformity"] = uniformity(x, 2.0)
result["exact_s"] = time.perf_counter() - started

floor = {}
for strip in (256, 1024, 4096):
    buffer = torch.empty(strip, rows)
    started = time.perf_counter()
    for start in range(0, rows, strip):
        stop = min(start + strip, rows)
        tile = buffer[: stop - start]
        torch.mm(x[start:stop], x.T, out=tile)
        tile.exp_()
    floor[strip] = time.perf_counter() - started
    del buffer
result["floor_s"] = floor
print(json.dumps(result))
"""


# Imports torch and prints the process's own peak (VmHWM), which excludes the
# children that wait4 adds to the maximum resident set size.
TORCH_ONLY_CHILD = r"""
import torch
with open("/proc/self/status") as status:
    print([line.split()[1] for line in status if line.startswith("VmHWM")][0])
"""


def machine_lines() -> list[str]:
    """Return the CPU model, core count, kernel and torch version, one per line."""
    model = "unknown"
    cores = os.cpu_count()
    if shutil.which("lscpu"):
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        found = re.search(r"Model name:\s*(.+)", text)
        model = found.group(1).strip() if found else model
        found = re.search(r"^CPU\(s\):\s*(\d+)", text, re.MULTILINE)
        cores = int(found.group(1)) if found else cores
    import numpy
    import torch

    return [
        f"- CPU: {model} (lscpu), {cores} cores, {torch.get_num_threads()} torch threads",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {numpy.__version__}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--exact-rows", type=int, default=100_000)
    parser.add_argument(
        "--folder", type=Path, default=Path("/tmp/alignsphere-measure-bench")
    )
    parser.add_argument(
        "--output", type=Path, default=Path("docs/benchmarks/measure.md")
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    args.folder.mkdir(parents=True, exist_ok=True)
    embeddings = args.folder / "embeddings.npy"
    pairs = args.folder / "pairs.npy"
    report_path = args.folder / "report.json"
    load_before = os.getloadavg()

    print(
        f"writing {args.rows:,} x {args.dim} float32 rows to {embeddings}", flush=True
    )
    started = time.perf_counter()
    write_embeddings(embeddings, args.rows, args.dim)
    write_pairs(pairs, args.rows)
    write_s = time.perf_counter() - started

    executable = str(Path(sys.executable).parent / "alignsphere")
    measure = [
        executable,
        "measure",
        str(embeddings),
        "--pair-index",
        str(pairs),
        "--uniformity",
        "sampled",
        "--json",
        str(report_path),
    ]
    baseline = [sys.executable, "-c", TORCH_ONLY_CHILD]
    print("measuring:", shlex.join(["/usr/bin/time", "-v", *measure]), flush=True)
    measured = run_timed(measure)
    torch_only = run_timed(baseline)
    report = json.loads(report_path.read_text())

    exact_command = [
        sys.executable,
        "-c",
        EXACT_CHILD,
        str(embeddings),
        str(args.exact_rows),
    ]
    print(f"exact uniformity on {args.exact_rows:,} rows and the floor", flush=True)
    exact = json.loads(run_timed(exact_command)["stdout"].strip().splitlines()[-1])
    load_after = os.getloadavg()

    page = render(
        args,
        measured,
        torch_only,
        report,
        exact,
        write_s,
        load_before,
        load_after,
        measure,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    print(page)
    if not args.keep:
        shutil.rmtree(args.folder)
    limit_kib = MEMORY_LIMIT_BYTES / 1024
    return 0 if measured["max_rss_kib"] < limit_kib else 1


def render(
    args, measured, torch_only, report, exact, write_s, load_before, load_after, measure
) -> str:
    """Return the Markdown page of the results."""
    loads = ", ".join(f"{value:.2f}" for value in load_before)
    loads_after = ", ".join(f"{value:.2f}" for value in load_after)
    lines = [
        f"# Benchmark: `alignsphere measure` on {args.rows:,} embeddings",
        "",
        f"Written by `python benchmarks/measure_large.py --rows {args.rows} "
        f"--dim {args.dim} --exact-rows {args.exact_rows}` on "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        f"- Load average (1, 5, 15 min) before: {loads}; after: {loads_after}. The "
        "two cores are shared with other work, so times vary from run to run; each "
        "ratio below comes from one run.",
        "",
    ]
    lines += _render_measure(args, measured, torch_only, report, write_s, measure)
    lines += _render_exact(exact)
    return "\n".join(lines)


def _mb(kib: int) -> str:
    return f"{kib * 1024 / 1e6:,.0f}"


def _render_measure(args, measured, torch_only, report, write_s, measure) -> list[str]:
    size_gb = args.rows * args.dim * 4 / 1e9
    rss = measured["max_rss_kib"]
    torch_rss = torch_only["max_rss_kib"]
    torch_hwm = int(torch_only["stdout"].strip())
    limit_kib = MEMORY_LIMIT_BYTES / 1024
    estimate = report["uniformity"]["estimate"]
    shown_command = shlex.join(["/usr/bin/time", "-v", *measure]).replace(
        str(Path(sys.executable).parent) + "/", ""
    )
    lines = [
        f"## {args.rows:,} x {args.dim} float32 from a .npy file ({size_gb:.2f} GB)",
        "",
        "Synthetic rows (Gaussian with a k^-0.5 spectrum and a common offset), rows "
        f"2k and 2k + 1 a positive pair, written in {write_s:.1f} s. Command:",
        "",
        "```",
        shown_command,
        "```",
        "",
        "| stage | time (s) |",
        "| --- | ---: |",
    ]
    for stage, seconds in report["timings_s"].items():
        lines.append(f"| {stage} | {seconds:.2f} |")
    lines += [
        f"| whole command, start to exit | {measured['wall_s']:.2f} |",
        "",
        "The first stage reads every row once, validates it (NaN, infinities, zero "
        "rows) and accumulates the raw norms, the mean and the centred scatter "
        "matrix. The spectrum stage is one symmetric eigendecomposition of that "
        "d x d matrix, which gives effective rank and alpha-ReQ. Alignment reads the "
        f"{report['alignment']['num_pairs']:,} pairs of the index. Sampled uniformity "
        f"draws {estimate['num_pairs']:,} random pairs (standard error "
        f"{estimate['std_error']:.1e}).",
        "",
        "| peak resident memory (`/usr/bin/time -v`, Maximum resident set size) "
        "| KiB | MB |",
        "| --- | ---: | ---: |",
        f"| `alignsphere measure` above | {rss:,} | {_mb(rss)} |",
        f'| `python -c "import torch"` | {torch_rss:,} | {_mb(torch_rss)} |',
        f"| limit, 1 GB | {limit_kib:,.0f} | 1,000 |",
        "",
        f"Result: {'under' if rss < limit_kib else 'OVER'} the limit. On top of the "
        "interpreter and torch, the command keeps one chunk of rows (8,192) or one "
        "batch of sampled pairs (2 x 2,048 rows) in memory at a time. It reads the "
        "file with positional reads, so the file's data stays in the page cache, "
        "which is not resident memory of the process.",
        "",
        "Both rows include what happens after the program's last line. This torch "
        "build loads its CUDA libraries even on a machine without a GPU. The exit "
        "handlers and library destructors that run when the process exits bring "
        "more pages into memory: `import torch` alone "
        f"peaks at {torch_hwm:,} KiB while it runs (`VmHWM` in `/proc/self/status` "
        f"just before exit) and at {torch_rss:,} KiB as `/usr/bin/time` reports it, "
        f"{_mb(torch_rss - torch_hwm)} MB more. (Ending the process with `os._exit`, "
        "which skips those destructors, makes the two numbers equal.)",
        "",
    ]
    return lines


def _render_exact(exact) -> list[str]:
    floor = {int(strip): seconds for strip, seconds in exact["floor_s"].items()}
    best_strip = min(floor, key=floor.get)
    lines = [
        f"## Exact uniformity of {exact['rows']:,} rows at d = {exact['dim']}",
        "",
        "One child process, the first rows of the file (L2-normalised, float32), "
        f"{exact['threads']} torch threads. The floor forms all N^2 entries of "
        "x @ x.T strip by strip and exponentiates them in place, nothing else.",
        "",
        "| computation | time (s) | ratio to floor |",
        "| --- | ---: | ---: |",
        f"| `alignsphere.metrics.uniformity(x, t=2)` = {exact['uniformity']:.6f} | "
        f"{exact['exact_s']:.2f} | {exact['exact_s'] / floor[best_strip]:.2f} |",
    ]
    for strip, seconds in sorted(floor.items()):
        marker = " (floor)" if strip == best_strip else ""
        lines.append(
            f"| x @ x.T and exp, strips of {strip} rows{marker} | {seconds:.2f} | "
            f"{seconds / floor[best_strip]:.2f} |"
        )
    lines += [
        "",
        "Exact uniformity computes each unordered pair once (N(N-1)/2 entries, "
        "tiles above the diagonal only), so a ratio below 1 means it does less work "
        "than the floor's N^2 entries, not that it beats the hardware.",
        "",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
