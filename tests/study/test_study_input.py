"""``alignsphere study`` input checks: settings of a used folder, data, CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignsphere.cli.main import main
from alignsphere.study.report import build_report

GRID = {"objective": ["1*align(alpha=2) + 1*uniform(t=2)"], "max_epochs": [1]}


def write_yaml(path: Path, study: dict) -> Path:
    path.write_text(json.dumps(study))
    return path


def run_study(arguments: list[str], capsys) -> tuple[int, list[str]]:
    code = main(["study", "--no-progress", *arguments])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    return code, lines


def test_changed_evaluation_on_used_folder(tmp_path, capsys):
    first = write_yaml(
        tmp_path / "a.yaml",
        {"base": "digits", "grid": GRID, "evaluation": {"knn_k": 5}},
    )
    second = write_yaml(
        tmp_path / "b.yaml",
        {"base": "digits", "grid": GRID, "evaluation": {"knn_k": 10}},
    )
    output = tmp_path / "study"
    (output / "results").mkdir(parents=True)
    (output / "study.yaml").write_text(first.read_text())

    code, lines = run_study(["--config", str(second), "--output", str(output)], capsys)

    assert code == 2
    assert len(lines) == 1
    assert "other settings (evaluation was {'knn_k': 5}" in lines[0]
    assert "choose another --output folder" in lines[0]
    # The folder still records the settings its results were made with.
    assert (output / "study.yaml").read_text() == first.read_text()


def test_report_keeps_only_the_study_trials(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for index, trial_id in enumerate(["aaa", "bbb", "ccc"]):
        row = {
            "trial_id": trial_id,
            "objective": "1*align(alpha=2) + 1*uniform(t=2)",
            "family": "align+uniform",
            "seed": index,
            "max_epochs": 1,
            "linear_acc": 0.5 + 0.1 * index,
            "knn_acc": 0.4,
            "align": 1.0,
            "uniform": -2.0 - index,
        }
        (results / f"{trial_id}.json").write_text(json.dumps(row))

    report = build_report(tmp_path, figures=False, trial_ids=["aaa", "ccc"])

    assert sorted(report["results"]["trial_id"]) == ["aaa", "ccc"]
    assert len(build_report(tmp_path, figures=False)["results"]) == 3


def test_more_cpus_per_trial_than_ray_has(tmp_path, capsys):
    config = write_yaml(tmp_path / "s.yaml", {"base": "digits", "grid": GRID})
    arguments = ["--config", str(config), "--output", str(tmp_path / "study")]
    arguments += ["--num-cpus", "1", "--cpus-per-trial", "4"]

    code, lines = run_study(arguments, capsys)

    assert code == 2
    assert len(lines) == 1
    assert "cpus_per_trial=4 is more than the 1 CPUs" in lines[0]


def test_base_without_data_root_needs_flag(tmp_path, capsys):
    config = write_yaml(tmp_path / "s.yaml", {"base": "cifar10_cpu", "grid": GRID})

    code, lines = run_study(
        ["--config", str(config), "--output", str(tmp_path / "study")], capsys
    )

    assert code == 2
    assert len(lines) == 1
    assert "'cifar10_cpu' has no data.root; pass --data-root DIR" in lines[0]


def test_eval_data_on_image_study(tmp_path, capsys):
    config = write_yaml(tmp_path / "s.yaml", {"base": "digits", "grid": GRID})
    arguments = ["--config", str(config), "--output", str(tmp_path / "study")]
    arguments += ["--eval-data", str(tmp_path)]

    code, lines = run_study(arguments, capsys)

    assert code == 2
    assert "--eval-data applies to text studies only" in lines[0]


def test_senteval_folder_missing_task_files(tmp_path, capsys):
    senteval = tmp_path / "senteval"
    senteval.mkdir()
    for name in ("rt-polarity.pos", "rt-polarity.neg"):
        (senteval / name).write_text("a sentence\n")
    config = write_yaml(
        tmp_path / "s.yaml",
        {
            "base": "gutenberg_gru_cpu",
            "grid": GRID,
            "evaluation": {"tasks": ["MR", "TREC"]},
        },
    )
    arguments = ["--config", str(config), "--output", str(tmp_path / "study")]
    arguments += ["--data-root", str(tmp_path), "--eval-data", str(senteval)]

    code, lines = run_study(arguments, capsys)

    assert code == 2
    assert len(lines) == 1
    assert "lacks TREC.train, TREC.test" in lines[0]
    assert not (tmp_path / "study" / "trials").exists()


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ({"base": "digits", "grid": GRID, "evaluation": [1, 2]}, "evaluation must be"),
        ({"base": "digits", "grid": GRID, "evaluation": "MR"}, "evaluation must be"),
        ({"base": "digits", "grid": GRID, "overrides": [1, 2]}, "overrides must be"),
        (
            {"base": "digits", "grid": GRID | {"max_epochs": [True]}},
            "max_epochs entries must be a positive integer",
        ),
        (
            {"base": "digits", "grid": GRID, "evaluation": {"heldout_images": "x"}},
            "heldout_images must be an integer >= 0 (0 turns it off), got 'x'",
        ),
    ],
)
def test_malformed_study_sections(tmp_path, capsys, study, message):
    config = write_yaml(tmp_path / "s.yaml", study)

    code, lines = run_study(
        ["--config", str(config), "--output", str(tmp_path / "study")], capsys
    )

    assert code == 2
    assert len(lines) == 1
    assert message in lines[0]


def test_study_config_is_a_folder(tmp_path, capsys):
    code, lines = run_study(
        ["--config", str(tmp_path), "--output", str(tmp_path / "study")], capsys
    )

    assert code == 2
    assert "is a folder; give the path of a study YAML file" in lines[0]


@pytest.mark.slow
def test_failing_trials_give_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = write_yaml(
        tmp_path / "s.yaml",
        {
            "base": "cifar10_cpu",
            "grid": GRID | {"objective": [GRID["objective"][0], "1*uniform(t=2)"]},
        },
    )
    arguments = ["--config", str(config), "--output", str(tmp_path / "study")]
    arguments += ["--data-root", str(empty), "--num-cpus", "2"]

    code, lines = run_study(arguments, capsys)

    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith("alignsphere study: error: all 2 trials failed")
    assert "DatasetNotFoundError" in lines[0]
    error_files = list((tmp_path / "study" / "trials").glob("*/error.txt"))
    assert len(error_files) == 2
    assert "Traceback" in error_files[0].read_text()


def test_report_only_on_a_missing_folder(tmp_path, capsys):
    config = write_yaml(tmp_path / "study.yaml", {"base": "digits", "grid": GRID})
    output = tmp_path / "never_ran"
    arguments = ["--config", str(config), "--output", str(output), "--report-only"]
    code, lines = run_study(arguments, capsys)
    assert code == 2
    assert len(lines) == 1, lines
    assert f"{output} contains no study results" in lines[0]
    assert not output.exists()


def test_output_that_is_a_file(tmp_path, capsys):
    config = write_yaml(tmp_path / "study.yaml", {"base": "digits", "grid": GRID})
    output = tmp_path / "afile"
    output.write_text("keep me")
    for extra in ([], ["--report-only"]):
        arguments = ["--config", str(config), "--output", str(output), *extra]
        code, lines = run_study(arguments, capsys)
        assert code == 2
        assert lines == [
            f"alignsphere study: error: --output {output} is a file, not a folder; "
            "give the study's folder"
        ]
    assert output.read_text() == "keep me"
