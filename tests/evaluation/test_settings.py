"""Checks of ``EvaluationSettings``: each bad field is named with what it accepts."""

from __future__ import annotations

import math

import pytest

from alignsphere.evaluation import EvaluationSettings


def test_defaults_are_valid():
    EvaluationSettings().validate()
    EvaluationSettings(layers=["output", "pooled"], knn_temperature=0.07).validate()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("probe", "lbfgs", "invalid probe 'lbfgs'; valid probes: fast, paper"),
        ("probe", None, "invalid probe None"),
        ("layers", "output", "layers must be a non-empty list"),
        ("layers", [], "layers must be a non-empty list"),
        ("layers", ["output", 3], "layers must be a non-empty list"),
        (
            "knn_k",
            True,
            r"knn_k must be an integer >= 0 \(0 turns k-NN off\), got True",
        ),
        ("knn_k", -1, "knn_k must be an integer >= 0"),
        ("knn_k", 5.0, "knn_k must be an integer >= 0"),
        ("heldout_images", False, "heldout_images must be an integer >= 0"),
        ("heldout_images", 1, "heldout_images must be 0 .* or >= 2"),
        ("probe_epochs", 0, "probe_epochs must be an integer >= 1"),
        ("batch_size", True, "batch_size must be an integer >= 1, got True"),
        ("seed", "0", "seed must be an integer, got '0'"),
        ("alpha", True, "alpha must be a finite number > 0, got True"),
        ("alpha", 0, "alpha must be a finite number > 0"),
        ("t", math.nan, "t must be a finite number > 0"),
        ("knn_temperature", math.inf, "knn_temperature must be a finite number > 0"),
        ("knn_temperature", -0.1, "or empty"),
        ("progress", 1, "progress must be true or false, got 1"),
    ],
)
def test_invalid_field_is_named(field, value, message):
    settings = EvaluationSettings(**{field: value})
    with pytest.raises(ValueError, match=message):
        settings.validate()
