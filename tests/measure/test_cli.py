"""``alignsphere measure`` end to end: output, bad input and what it imports."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from alignsphere.cli.main import main

from .conftest import reference_alignment, reference_uniformity


@pytest.fixture
def files(tmp_path, rng):
    x = rng.standard_normal((200, 16)).astype(np.float32)
    y = (x + 0.4 * rng.standard_normal(x.shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, x, y


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [
        line for line in captured.err.splitlines() if line.startswith("alignsphere")
    ]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_table_for_two_files(files, capsys):
    folder, x, y = files
    assert main(["measure", str(folder / "x.npy"), str(folder / "y.npy")]) == 0
    out = capsys.readouterr().out
    assert f"{reference_alignment(x, y):.4f}" in out
    assert f"{reference_uniformity(np.concatenate([x, y])):.4f}" in out
    assert "uniformity over: every row of" in out
    assert "positive pairs: 200 pairs: row i of" in out


def test_json_to_stdout(files, capsys):
    folder, x, _ = files
    assert main(["measure", str(folder / "x.npy"), "--json", "-", "--t", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["alignment"] is None
    assert report["uniformity"]["t"] == 3.0
    assert report["uniformity"]["value"] == pytest.approx(
        reference_uniformity(x, 3.0), abs=2e-6
    )


def test_json_file_and_plot(files, capsys):
    folder, _, _ = files
    code = main(
        [
            "measure",
            str(folder / "x.npy"),
            str(folder / "y.npy"),
            "--json",
            str(folder / "out" / "report.json"),
            "--plot",
            str(folder / "out" / "report.png"),
            "--uniformity",
            "sampled",
            "--num-pairs",
            "5000",
        ]
    )
    assert code == 0
    report = json.loads((folder / "out" / "report.json").read_text())
    assert report["uniformity"]["method"] == "sampled"
    assert report["uniformity"]["estimate"]["num_pairs"] == 5000
    assert (folder / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_options_reach_the_report(files, capsys):
    folder, _, _ = files
    args = [
        "measure",
        str(folder / "x.npy"),
        str(folder / "y.npy"),
        "--json",
        "-",
        "--alpha",
        "1",
        "--uniformity-over",
        "mean",
        "--dedup",
        "--no-center-spectrum",
        "--req-ranks",
        "2",
        "8",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["alignment"]["alpha"] == 1.0
    assert len(report["uniformity"]["sides"]) == 2
    assert report["uniformity"]["duplicates_removed"] == 0
    assert report["statistics"]["spectrum"]["centered"] is False
    fit = report["statistics"]["spectrum"]["alpha_req"]
    assert (fit["first_rank"], fit["last_rank"]) == (2, 8)


def _bad_inputs(folder, rng):
    x = rng.standard_normal((20, 4)).astype(np.float32)
    np.save(folder / "x.npy", x)
    np.save(folder / "short.npy", x[:15])
    with_nan = x.copy()
    with_nan[7, 2] = np.nan
    np.save(folder / "nan.npy", with_nan)
    with_zero = x.copy()
    with_zero[11] = 0
    np.save(folder / "zero.npy", with_zero)
    np.save(folder / "vector.npy", x[0])
    np.save(folder / "ints.npy", np.arange(40).reshape(20, 2))
    (folder / "pairs.tsv").write_text("a\tb\nc\n")
    (folder / "latin.tsv").write_bytes(b"a\tb\ncaf\xe9\td\n")

    return {
        "lengths": (
            ["x.npy", "short.npy"],
            ["x.npy: has 20 rows but short.npy has 15", "row index 15", "equal length"],
        ),
        "nan": (["nan.npy"], ["nan.npy row index 7 contains NaN", "drop those rows"]),
        "zero": (
            ["zero.npy"],
            ["zero.npy row index 11 is all zeros", "drop zero rows"],
        ),
        "one_dimensional": (
            ["vector.npy"],
            ["vector.npy: contains a 1-D array", "reshape"],
        ),
        "integers": (["ints.npy"], ["ints.npy: has dtype int64", "astype(np.float32)"]),
        "missing_column": (
            [
                "--sentence-model",
                "minilm",
                "--pair-file",
                "pairs.tsv",
                "--pair-format",
                "plain",
            ],
            [
                "pairs.tsv line 2: has 1 tab-separated column(s)",
                "column 2 (second sentence)",
            ],
        ),
        "non_utf8": (
            [
                "--sentence-model",
                "minilm",
                "--pair-file",
                "latin.tsv",
                "--pair-format",
                "plain",
            ],
            ["latin.tsv: line 2 is not valid utf-8 (byte 0xe9", "--encoding"],
        ),
        "no_layout": (
            ["--sentence-model", "minilm", "--pair-file", "pairs.tsv"],
            ["--pair-format stsb"],
        ),
        "index_range": (
            ["x.npy", "--pair-index", "index.txt"],
            ["index.txt line 1: column 2 names row index 20", "x.npy has 20 rows"],
        ),
        "two_kinds": (
            ["x.npy", "--image-model", "resnet18"],
            ["one kind of input at a time"],
        ),
        "nothing": ([], ["nothing to measure"]),
    }


@pytest.mark.parametrize(
    "case",
    [
        "lengths",
        "nan",
        "zero",
        "one_dimensional",
        "integers",
        "missing_column",
        "non_utf8",
        "no_layout",
        "index_range",
        "two_kinds",
        "nothing",
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, rng, capsys, monkeypatch, case):
    cases = _bad_inputs(tmp_path, rng)
    (tmp_path / "index.txt").write_text("0 20\n")
    monkeypatch.chdir(tmp_path)
    args, expected = cases[case]
    assert main(["measure", *args]) == 2
    line = _error_line(capsys)
    for part in expected:
        assert part in line


def test_measure_on_files_imports_no_heavy_packages(files):
    folder, _, _ = files
    script = (
        "import sys\n"
        "from alignsphere.cli.main import main\n"
        f"assert main(['measure', {str(folder / 'x.npy')!r}, {str(folder / 'y.npy')!r}]) == 0\n"
        "heavy = ('lightning', 'pytorch_lightning', 'ray', 'sentence_transformers',\n"
        "         'transformers', 'torchvision', 'matplotlib', 'sklearn', 'scipy')\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
        "print('LOADED', loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
