"""Training dynamics from CSV logs in the layout that alignsphere train writes."""

from __future__ import annotations

import json

import pytest

from alignsphere.plots.dynamics import (
    RunLogError,
    find_metric_files,
    load_run_dynamics,
    make_dynamics_figure,
    read_epoch_metrics,
)

# The header and row kinds of a real metrics.csv of `alignsphere train`: a
# learning-rate row without epoch, a step row, a held-out row, an epoch-mean row.
HEADER = (
    "epoch,heldout/align,heldout/uniform,heldout/uniform_optimum,"
    "heldout/uniform_views,lr-SGD,step,train/align_epoch,train/align_step,"
    "train/loss_epoch,train/loss_step,train/uniform_epoch,train/uniform_step"
)


def _epoch_rows(epoch: int, align: float, uniform: float) -> list[str]:
    step = 5 * epoch + 4
    return [
        f",,,,,0.1,{step - 4},,,,,,",
        f"{epoch},,,,,,{step},,0.14,,-1.83,,-1.97",
        f"{epoch},{align},{uniform},-3.7518,{uniform - 0.03},,{step + 1},,,,,,",
        f"{epoch},,,,,,{step},{align + 0.05},,{align - 1.5},,{uniform + 0.2},",
    ]


def _write_version(run, version, rows):
    folder = run / "csv" / f"version_{version}"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("\n".join([HEADER, *rows]) + "\n")


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run_au"
    rows = _epoch_rows(0, 0.15, -2.33) + _epoch_rows(1, 0.13, -2.45)
    _write_version(run, 0, rows)
    # A resumed start logs epoch 1 again and goes on to epoch 2.
    _write_version(run, 1, _epoch_rows(1, 0.12, -2.50) + _epoch_rows(2, 0.17, -2.82))
    (run / "config.yaml").write_text(
        "seed: 0\n"
        "objective: 1*align(alpha=2) + 1*uniform(t=3)\n"
        "heldout:\n  num_images: 450\n  alpha: 2.0\n  t: 2.0\n"
    )
    return run


def test_finds_versions_in_order(run):
    (run / "csv" / "version_10").mkdir()
    (run / "csv" / "version_10" / "metrics.csv").write_text(HEADER + "\n")
    names = [path.parent.name for path in find_metric_files(run)]
    assert names == ["version_0", "version_1", "version_10"]


def test_epochs_merge_and_later_versions_win(run):
    metrics = read_epoch_metrics(run)
    assert list(metrics) == [0, 1, 2]
    assert metrics[1]["heldout/align"] == 0.12
    assert metrics[0]["train/align_epoch"] == pytest.approx(0.20)
    assert not any(
        name.endswith("_step") for values in metrics.values() for name in values
    )
    assert "lr-SGD" not in metrics[0]


def test_heldout_source_is_default(run):
    dynamics = load_run_dynamics(run)
    assert dynamics.source == "heldout"
    assert dynamics.epochs == [0, 1, 2]
    assert dynamics.align == [0.15, 0.12, 0.17]
    assert dynamics.uniform == [-2.33, -2.50, -2.82]
    assert dynamics.uniform_optimum == -3.7518
    assert (dynamics.alpha, dynamics.t) == (2.0, 2.0)
    assert dynamics.label == "run_au: 1*align(alpha=2) + 1*uniform(t=3)"


def test_train_source_reads_epoch_means(run):
    dynamics = load_run_dynamics(run, source="train")
    assert dynamics.align == pytest.approx([0.20, 0.17, 0.22])
    assert dynamics.uniform == pytest.approx([-2.13, -2.30, -2.62])
    # Alpha and t of the training terms come from the objective.
    assert (dynamics.alpha, dynamics.t) == (2.0, 3.0)


def test_auto_falls_back_to_training_terms(tmp_path):
    run = tmp_path / "no_heldout"
    rows = [
        line
        for epoch in range(3)
        for line in _epoch_rows(epoch, 0.1 + epoch, -2.0)
        if ",-3.7518," not in line
    ]
    _write_version(run, 0, rows)
    assert load_run_dynamics(run).source == "train"


def test_missing_metrics_name_the_fix(tmp_path):
    run = tmp_path / "contrastive"
    _write_version(run, 0, ["0,,,,,,4,,,5.1,,,"])
    with pytest.raises(RunLogError, match="heldout.num_images >= 2"):
        load_run_dynamics(run)


def test_missing_folder_and_logs(tmp_path):
    with pytest.raises(RunLogError, match="not found"):
        read_epoch_metrics(tmp_path / "nothing")
    with pytest.raises(RunLogError, match="no csv/version_N/metrics.csv"):
        read_epoch_metrics(tmp_path)


def test_non_numeric_value_is_reported(tmp_path):
    run = tmp_path / "broken"
    _write_version(run, 0, ["0,abc,,,,,4,,,,,,"])
    with pytest.raises(RunLogError, match="non-numeric heldout/align"):
        read_epoch_metrics(run)


def test_unknown_source_raises(run):
    with pytest.raises(ValueError, match="unknown source"):
        load_run_dynamics(run, source="test")


def test_figure_and_json_are_written(run, tmp_path):
    other = tmp_path / "run_two"
    _write_version(other, 0, _epoch_rows(0, 0.3, -1.9) + _epoch_rows(1, 0.2, -2.1))
    runs, files = make_dynamics_figure([run, other], tmp_path / "out")
    assert [path.name for path in files] == [
        "dynamics.png",
        "dynamics.pdf",
        "dynamics.json",
    ]
    for path in files[:2]:
        assert path.stat().st_size > 10_000
    content = json.loads(files[-1].read_text())
    assert [item["epochs"] for item in content["runs"]] == [[0, 1, 2], [0, 1]]
    assert runs[1].objective is None
