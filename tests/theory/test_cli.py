"""``alignsphere theory`` end to end: tables, files and bad input."""

from __future__ import annotations

import json

import pytest

from alignsphere.cli.main import main

SMALL = [
    "--max-negatives",
    "64",
    "--pools",
    "4",
    "--anchors-per-pool",
    "8",
    "--limit-pairs",
    "256",
    "--bound-samples",
    "64",
    "--bound-dims",
    "2,3",
    "--no-progress",
]


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [
        line for line in captured.err.splitlines() if line.startswith("alignsphere")
    ]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_writes_tables_figures_and_json(tmp_path, capsys):
    code = main(
        ["theory", "--output", str(tmp_path), "--scenarios", "uniform-d3", *SMALL]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "uniform-d3" in out
    assert "Uniformity bound" in out
    for name in ("theorem1", "uniformity_bound"):
        for suffix in (".png", ".pdf", ".json"):
            assert (tmp_path / f"{name}{suffix}").stat().st_size > 0
    theorem1 = json.loads((tmp_path / "theorem1.json").read_text())
    (encoder,) = theorem1["encoders"]
    assert encoder["negative_counts"] == [1, 2, 4, 8, 16, 32, 64]
    assert encoder["description"] == "uniform on S^2"
    bound = json.loads((tmp_path / "uniformity_bound.json").read_text())
    assert {row["dim"] for row in bound["von_mises_fisher"]} == {2, 3}


def test_non_power_of_two_max_negatives(tmp_path, capsys):
    args = ["theory", "--output", str(tmp_path), "--scenarios", "uniform-d3", *SMALL]
    args[args.index("64")] = "48"
    assert main(args) == 0
    encoder = json.loads((tmp_path / "theorem1.json").read_text())["encoders"][0]
    assert encoder["negative_counts"][-2:] == [32, 48]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scenarios", "uniform-d4"], "unknown --scenarios uniform-d4"),
        (["--scenarios", "none"], "--scenarios none leaves nothing"),
        (["--pools", "1"], "--pools must be >= 2"),
        (["--tau", "-1"], "--tau must be a positive number"),
        (["--bound-dims", "1,x"], "invalid --bound-dims"),
        (["--checkpoint", "/nonexistent/encoder.pt"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, message):
    assert main(["theory", "--output", str(tmp_path), *extra]) == 2
    assert message in _error_line(capsys)
