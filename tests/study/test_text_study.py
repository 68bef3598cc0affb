"""Text studies: a GRU trial on the real corpus, SentEval targets, the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from alignsphere.cli.main import main
from alignsphere.study.config import (
    StudyConfigError,
    load_study,
    objective_family,
    parse_study,
)
from alignsphere.study.report import correlation_table, targets_of, write_figures
from alignsphere.study.trial import last_heldout_metrics, run_trial
from alignsphere.text.models import load_sentence_encoder
from alignsphere.text.module import measure_pairs
from alignsphere.text.senteval import evaluate_senteval
from alignsphere.text.training import build_text_run, load_text_encoder

# A GRU small enough to train in seconds on 600 sentences of the real corpus.
TINY_OVERRIDES = {
    "data.options.max_sentences": 600,
    "data.train_limit": 256,
    "optim.batch_size": 64,
    "model.out_dim": 32,
    "model.options.embedding_dim": 16,
    "heldout.num_images": 40,
}
TINY_SENTEVAL = {
    "tasks": ["MR", "TREC"],
    "limit": 300,
    "folds": 3,
    "inner_folds": 2,
    "c_grid": [1.0],
}


def test_text_trial_reports_senteval_and_heldout_metrics(
    tmp_path, gutenberg_dir, senteval_dir
):
    torch.set_num_threads(1)
    trial = {
        "objective": "1*quick_thought(tau=0.1)",
        "seed": 0,
        "max_epochs": 2,
        "overrides": TINY_OVERRIDES,
    }
    evaluation = TINY_SENTEVAL | {"data": str(senteval_dir)}
    run_dir = tmp_path / "trial"
    row = run_trial(
        trial,
        base="gutenberg_gru_cpu",
        evaluation=evaluation,
        run_dir=run_dir,
        threads=1,
        data_root=str(gutenberg_dir),
    )
    assert row["epochs"] == 2
    assert "knn_acc" not in row
    assert row["linear_acc"] == pytest.approx(
        (row["senteval_MR"] + row["senteval_TREC"]) / 2
    )

    # SentEval again, from the exported encoder, gives the same accuracies.
    encode, _ = load_sentence_encoder(run_dir / "encoder.pt")
    scores = evaluate_senteval(
        encode,
        senteval_dir,
        ["MR", "TREC"],
        folds=3,
        inner_folds=2,
        c_grid=(1.0,),
        limit=300,
    )
    assert row["senteval_MR"] == pytest.approx(scores["MR"].accuracy / 100)
    assert row["senteval_TREC"] == pytest.approx(scores["TREC"].accuracy / 100)

    # The held-out metrics are those of the trained encoder on the run's
    # held-out pairs, measured again here.
    encoder, config = load_text_encoder(run_dir / "encoder.pt")
    _, _, callbacks = build_text_run(config)
    (heldout,) = callbacks
    measured = measure_pairs(encoder, heldout.first, heldout.second)
    assert row["align"] == pytest.approx(measured["align"], rel=1e-5)
    assert row["uniform"] == pytest.approx(measured["uniform"], rel=1e-5)
    assert row["uniform_optimum"] == pytest.approx(measured["uniform_optimum"])


def test_last_heldout_metrics_latest_epoch(tmp_path):
    header = "epoch,heldout/align,heldout/uniform,step,train/loss\n"
    first = tmp_path / "csv" / "version_0" / "metrics.csv"
    first.parent.mkdir(parents=True)
    first.write_text(header + "0,1.5,-3.0,10,\n,,,11,0.4\n1,1.4,-3.2,20,\n")
    second = tmp_path / "csv" / "version_1" / "metrics.csv"
    second.parent.mkdir(parents=True)
    second.write_text(header + ",,,21,0.3\n2,1.3,-3.3,30,\n")
    assert last_heldout_metrics(tmp_path) == {
        "heldout/align": 1.3,
        "heldout/uniform": -3.3,
    }
    assert last_heldout_metrics(tmp_path / "missing") == {}


def _text_study(evaluation: dict) -> dict:
    return {
        "base": "gutenberg_gru_cpu",
        "grid": {"objective": ["1*quick_thought(tau=0.1)"]},
        "evaluation": evaluation,
    }


def test_text_study_checks_its_evaluation_section():
    study = parse_study(_text_study({"tasks": ["MR"], "inner_folds": 3}))
    assert study.evaluation == {"tasks": ["MR"], "inner_folds": 3}
    with pytest.raises(StudyConfigError, match=r"unknown evaluation key.*knn_k"):
        parse_study(_text_study({"knn_k": 5}))
    with pytest.raises(StudyConfigError, match="valid tasks: MR, CR, SUBJ"):
        parse_study(_text_study({"tasks": ["SST2"]}))
    with pytest.raises(StudyConfigError, match="folds x inner_folds = 100"):
        parse_study(_text_study({"limit": 50}))


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"c_grid": [float("nan")]}, "finite numbers > 0"),
        ({"c_grid": [float("inf")]}, "finite numbers > 0"),
        ({"c_grid": [0]}, "finite numbers > 0"),
        ({"c_grid": [True]}, "finite numbers > 0"),
        ({"c_grid": ["1.0"]}, "finite numbers > 0"),
        ({"c_grid": 1.0}, "finite numbers > 0"),
        ({"tasks": "MR"}, "non-empty list of task names"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"inner_folds": True}, "inner_folds must be an integer >= 2"),
        ({"seed": "a"}, "seed must be an integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_text_study_rejects_invalid_values(evaluation, message):
    with pytest.raises(StudyConfigError, match=message):
        parse_study(_text_study(evaluation))


def test_image_study_checks_its_evaluation_section_and_base():
    grid = {"objective": ["1*align(alpha=2)"]}
    with pytest.raises(StudyConfigError, match=r"unknown evaluation key.*'knn_k'"):
        parse_study({"base": "digits", "grid": grid, "evaluation": {"knn_kk": 5}})
    with pytest.raises(StudyConfigError, match="invalid probe 'slow'"):
        parse_study({"base": "digits", "grid": grid, "evaluation": {"probe": "slow"}})
    with pytest.raises(StudyConfigError, match="base 'no_such_config'"):
        parse_study({"base": "no_such_config", "grid": grid})
    with pytest.raises(StudyConfigError, match="optim.batch_size"):
        parse_study(
            {"base": "digits", "grid": grid, "overrides": {"optim.batch_size": 0}}
        )


def _text_results(n: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    quality = np.linspace(0, 1, n)
    return pd.DataFrame(
        {
            "family": ["align+uniform"] * (n // 2) + ["quick_thought"] * (n - n // 2),
            "objective": [f"objective {i}" for i in range(n)],
            "seed": 0,
            "max_epochs": 2,
            "align": 2.0 - quality,
            "uniform": -3.0 - 0.5 * quality + rng.normal(0, 0.01, n),
            "senteval_MR": 0.55 + 0.1 * quality,
            "senteval_TREC": 0.70 - 0.1 * quality,
            "linear_acc": 0.6 + 0.01 * rng.normal(size=n),
        }
    )


def test_report_targets_of_text_and_image_studies():
    text = _text_results()
    assert targets_of(text) == {
        "SentEval": "linear_acc",
        "MR": "senteval_MR",
        "TREC": "senteval_TREC",
    }
    image = text.drop(columns=["senteval_MR", "senteval_TREC"]).assign(knn_acc=None)
    assert targets_of(image) == {"linear": "linear_acc"}
    assert targets_of(image.assign(knn_acc=0.5)) == {
        "linear": "linear_acc",
        "5-NN": "knn_acc",
    }


def test_text_correlations_follow_each_task(tmp_path):
    table = correlation_table(_text_results())
    combined = table[table.predictor == "-(L_align + L_uniform)"].set_index("target")
    # MR rises and TREC falls with the combined metric by construction.
    assert combined.loc["MR", "spearman"] == pytest.approx(1.0)
    assert combined.loc["TREC", "spearman"] == pytest.approx(-1.0)
    assert combined.loc["MR", "verdict"] == "supports"
    assert combined.loc["TREC", "verdict"] == "contradicts"
    assert math.isfinite(combined.loc["SentEval", "spearman"])
    paths = write_figures(_text_results(), tmp_path)
    assert {p.name for p in paths} >= {"align_uniform.png", "metrics_vs_accuracy.png"}


@pytest.mark.slow
def test_text_study_on_local_ray(tmp_path, gutenberg_dir, senteval_dir, capsys):
    config = tmp_path / "text.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "text-tiny",
                "base": "gutenberg_gru_cpu",
                "overrides": TINY_OVERRIDES,
                "grid": {
                    "objective": [
                        "1*quick_thought(tau=0.1)",
                        "1*align(alpha=2) + 1*uniform(t=2)",
                    ],
                    "max_epochs": [1],
                },
                "evaluation": TINY_SENTEVAL,
            }
        )
    )

    output = tmp_path / "study"
    code = main(
        [
            "study",
            "--config",
            str(config),
            "--output",
            str(output),
            "--data-root",
            str(gutenberg_dir),
            "--eval-data",
            str(senteval_dir),
            "--num-cpus",
            "2",
            "--no-progress",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    results = pd.read_csv(output / "report" / "results.csv")
    assert len(results) == 2
    assert {"senteval_MR", "senteval_TREC"} <= set(results.columns)
    assert results["align"].notna().all()
    assert results["uniform"].notna().all()
    assert "mean SentEval accuracy" in out
    assert (output / "report" / "metrics_vs_accuracy.png").is_file()


def test_text_study_without_senteval_folder_fails_before_training(tmp_path, capsys):
    config = tmp_path / "text.yaml"
    config.write_text(json.dumps(_text_study({})))
    code = main(
        [
            "study",
            "--config",
            str(config),
            "--output",
            str(tmp_path / "study"),
            "--data-root",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "--eval-data" in err
    assert not (tmp_path / "study" / "trials").exists()


def test_bundled_text_study():
    study = load_study("gutenberg_gru_cpu")
    assert study.kind == "text"
    assert len(study.trials()) >= 8
    families = {objective_family(trial.objective) for trial in study.trials()}
    assert families == {
        "quick_thought",
        "contrastive",
        "align+uniform",
        "align only",
        "uniform only",
        "mixture",
    }
