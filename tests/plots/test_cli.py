"""``alignsphere plot`` end to end: outputs and bad input."""

from __future__ import annotations

import json

import pytest

from alignsphere.cli.main import main

HEADER = "epoch,heldout/align,heldout/uniform,heldout/uniform_optimum,step"


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [
        line for line in captured.err.splitlines() if line.startswith("alignsphere")
    ]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def _run_folder(path):
    folder = path / "csv" / "version_0"
    folder.mkdir(parents=True)
    rows = [
        f"{epoch},{0.3 - 0.05 * epoch},{-1.5 - 0.4 * epoch},-3.75,{epoch}"
        for epoch in range(4)
    ]
    (folder / "metrics.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_dynamics_writes_figure_and_table(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    assert main(["plot", "dynamics", str(run), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "heldout" in out
    assert "0.3000" in out
    assert "0.1500" in out
    for suffix in (".png", ".pdf", ".json"):
        assert (tmp_path / "out" / f"dynamics{suffix}").stat().st_size > 0
    content = json.loads((tmp_path / "out" / "dynamics.json").read_text())
    assert content["runs"][0]["epochs"] == [0, 1, 2, 3]


def test_circle_on_digits(tmp_path, capsys):
    args = ["plot", "circle", "--dataset", "digits", "--output", str(tmp_path)]
    args += [
        "--epochs",
        "1",
        "--train-size",
        "200",
        "--test-size",
        "60",
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    for method in ("random", "supervised", "contrastive", "align_uniform"):
        assert method in out
    assert (tmp_path / "circle_digits.png").stat().st_size > 10_000
    content = json.loads((tmp_path / "circle_digits.json").read_text())
    assert content["settings"]["train_size"] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dynamics", "{tmp}/missing", "--output", "{tmp}/out"], "not found"),
        (["dynamics", "{tmp}", "--output", "{tmp}/out"], "no csv/version_N"),
        (
            ["circle", "--dataset", "mnist", "--output", "{tmp}"],
            "unknown --dataset 'mnist'",
        ),
        (["circle", "--dataset", "cifar10", "--output", "{tmp}"], "needs --data-root"),
        (
            [
                "circle",
                "--dataset",
                "cifar10",
                "--data-root",
                "{tmp}/none",
                "--output",
                "{tmp}",
            ],
            "CIFAR-10 train split not found",
        ),
        (
            ["circle", "--dataset", "digits", "--epochs", "0", "--output", "{tmp}"],
            "--epochs must be >= 1",
        ),
        (
            ["circle", "--dataset", "digits", "--bandwidth", "0", "--output", "{tmp}"],
            "--bandwidth",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    argv = ["plot", *(arg.replace("{tmp}", str(tmp_path)) for arg in args)]
    assert main(argv) == 2
    assert message in _error_line(capsys)


def test_plot_needs_a_figure_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["plot"])
    assert exit_info.value.code == 2
