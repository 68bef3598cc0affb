"""Study YAML parsing and trial expansion."""

from __future__ import annotations

import pytest

from alignsphere.study.config import (
    StudyConfigError,
    load_study,
    objective_family,
    parse_study,
    settings_conflict,
)


def test_bundled_digits_study_has_sixteen_or_more_encoders():
    study = load_study("digits")
    trials = study.trials()
    assert len(trials) >= 16
    assert len({t.trial_id for t in trials}) == len(trials)
    assert len({t.max_epochs for t in trials}) == 1


def test_trial_ids_are_stable_and_distinct():
    data = {
        "base": "digits",
        "grid": {"objective": ["1*align + 1*uniform", "1*contrastive"], "seed": [0, 1]},
    }
    first = [t.trial_id for t in parse_study(data).trials()]
    second = [t.trial_id for t in parse_study(data).trials()]
    assert first == second
    assert len(set(first)) == 4


def test_random_sweep_is_reproducible():
    data = {
        "base": "digits",
        "random": {
            "num_samples": 5,
            "seed": 3,
            "objective": "{w}*align(alpha={alpha}) + 1*uniform(t={t})",
            "space": {
                "w": {"loguniform": [0.1, 10]},
                "alpha": {"choice": [1, 2]},
                "t": {"uniform": [1, 4]},
            },
        },
    }
    trials = parse_study(data).trials()
    assert [t.objective for t in trials] == [
        t.objective for t in parse_study(data).trials()
    ]
    assert len(trials) == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grid": {"objective": ["1*align"]}}, "no 'base'"),
        ({"base": "digits"}, "defines no trials"),
        (
            {"base": "digits", "grid": {"objective": ["1*alignn"]}},
            "unknown objective term 'alignn'",
        ),
        (
            {"base": "digits", "grid": {"objective": ["1*align"], "lr": [1]}},
            "unknown grid key",
        ),
        (
            {"base": "digits", "grid": {"objective": ["1*align"], "max_epochs": [0]}},
            "positive integer",
        ),
        (
            {"base": "digits", "bogus": 1, "grid": {"objective": ["1*align"]}},
            "unknown key",
        ),
        (
            {
                "base": "digits",
                "random": {"num_samples": 2, "objective": "{w}*align", "space": {}},
            },
            "does not define",
        ),
        (
            {
                "base": "digits",
                "random": {
                    "num_samples": 2,
                    "objective": "{w}*align",
                    "space": {"w": {"normal": [0, 1]}},
                },
            },
            "must be one of",
        ),
        (
            {
                "base": "digits",
                "grid": {"objective": ["1*align"]},
                "evaluation": {"knn_k": True},
            },
            r"knn_k must be an integer >= 0 \(0 turns k-NN off\), got True",
        ),
        (
            {
                "base": "digits",
                "grid": {"objective": ["1*align"]},
                "evaluation": {"layers": "pooled"},
            },
            "layers must be a non-empty list",
        ),
        (
            {
                "base": "digits",
                "grid": {"objective": ["1*align"]},
                "evaluation": {"layers": ["output", "fc7"]},
            },
            "evaluation: layers: MLPEncoder has no layer 'fc7'; valid layers: ",
        ),
    ],
)
def test_invalid_study_rejected(data, message):
    """Each invalid study fails when it is parsed, before any trial trains."""
    with pytest.raises(StudyConfigError, match=message):
        parse_study(data)


def test_unknown_bundled_study_lists_names():
    with pytest.raises(StudyConfigError, match="bundled studies.*digits"):
        load_study("no_such_study")


@pytest.mark.parametrize(
    ("spec", "family"),
    [
        ("1*contrastive(tau=0.2)", "contrastive"),
        ("1*align + 1*uniform", "align+uniform"),
        ("1*align", "align only"),
        ("1*uniform", "uniform only"),
        ("1*align + 1*uniform + 1*contrastive", "mixture"),
        ("1*align + 0*uniform", "align only"),
    ],
)
def test_objective_family(spec, family):
    assert objective_family(spec) == family


def test_settings_conflict_compares_effective_evaluation():
    def study(evaluation):
        grid = {"objective": ["1*align"]}
        return parse_study({"base": "digits", "grid": grid, "evaluation": evaluation})

    written_out = {"layers": ["output"], "knn_k": 5, "probe": "fast", "progress": True}
    assert settings_conflict(study({}), study(written_out)) is None
    conflict = settings_conflict(study({}), study({"knn_k": 10}))
    assert conflict == "evaluation was {}, now {'knn_k': 10}"
