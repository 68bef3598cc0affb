"""Encoders with a 2-D output, their features on the circle, and the figure."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from alignsphere.metrics import uniformity_optimum
from alignsphere.plots.circle import (
    CIRCLE_METHODS,
    DEFAULT_SETTINGS,
    CircleFeatures,
    CircleSettings,
    make_circle_figure,
    plot_circle_features,
    train_circle_encoders,
)

OPTIMUM_ON_CIRCLE = uniformity_optimum(2, 2.0)


def _features(method: str, spread: float, seed: int) -> CircleFeatures:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(200) % 4
    angles = labels * (math.pi / 2) * spread + 0.2 * torch.randn(
        200, generator=generator
    )
    features = torch.stack([angles.cos(), angles.sin()], dim=1).double()
    return CircleFeatures(method, features, labels, 0.1, -1.2, OPTIMUM_ON_CIRCLE, 0.9)


def test_figure_from_given_features(tmp_path):
    results = [_features("random", 0.2, 0), _features("contrastive", 1.0, 1)]
    paths = plot_circle_features(
        results, ["a", "b", "c", "d"], tmp_path / "circle", title="synthetic"
    )
    assert [path.name for path in paths] == ["circle.png", "circle.pdf"]
    for path in paths:
        assert path.stat().st_size > 20_000


def _digits_settings(**changes) -> CircleSettings:
    return dataclasses.replace(DEFAULT_SETTINGS["digits"], **changes)


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    output = tmp_path_factory.mktemp("circle")
    settings = _digits_settings(epochs=30)
    return make_circle_figure("digits", output, settings=settings), output


def test_digits_figure_files(digits_report):
    report, output = digits_report
    names = sorted(path.name for path in report.files)
    assert names == ["circle_digits.json", "circle_digits.pdf", "circle_digits.png"]
    for path in report.files:
        assert (output / path.name).stat().st_size > 1000
    content = json.loads((output / "circle_digits.json").read_text())
    assert [row["method"] for row in content["encoders"]] == list(CIRCLE_METHODS)
    assert content["settings"]["epochs"] == 30


def test_digits_metrics_are_in_range(digits_report):
    report, _ = digits_report
    for row in report.encoders:
        assert 0 <= row["alignment"] <= 4
        # A sample can score a little below the population optimum.
        assert OPTIMUM_ON_CIRCLE - 0.05 < row["uniformity"] <= 0
        assert row["uniformity_optimum"] == pytest.approx(OPTIMUM_ON_CIRCLE)
        assert 0 <= row["knn_accuracy"] <= 1


def test_trained_encoders_spread_over_the_circle(digits_report):
    report, _ = digits_report
    rows = {row["method"]: row for row in report.encoders}
    assert rows["random"]["objective"] is None
    assert rows["random"]["final_loss"] is None
    for method in ("contrastive", "align_uniform"):
        assert rows[method]["uniformity"] < rows["random"]["uniformity"] - 0.2
        assert rows[method]["uniformity"] < OPTIMUM_ON_CIRCLE + 0.1
    assert rows["supervised"]["knn_accuracy"] > rows["random"]["knn_accuracy"] + 0.2


def test_encoders_share_the_initial_weights():
    from alignsphere.data import get_preset, load_dataset

    train = load_dataset("digits", split="train").subset(torch.arange(64))
    settings = _digits_settings(epochs=1, batch_size=32)
    encoders = train_circle_encoders(
        train, get_preset("digits"), settings, methods=("random", "random")
    )
    first, second = (item.encoder.state_dict() for item in encoders)
    assert all(torch.equal(first[key], second[key]) for key in first)
    trained = train_circle_encoders(
        train, get_preset("digits"), settings, methods=("align_uniform",)
    )[0]
    assert trained.final_loss is not None and math.isfinite(trained.final_loss)
    assert trained.encoder(torch.rand(3, 1, 8, 8)).shape == (3, 2)
    changed = trained.encoder.state_dict()
    assert not all(torch.equal(first[key], changed[key]) for key in first)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out: make_circle_figure("mnist", out), "unknown dataset"),
        (lambda out: make_circle_figure("cifar10", out), "needs a data root"),
        (
            lambda out: make_circle_figure(
                "digits", out, settings=_digits_settings(epochs=0)
            ),
            "epochs",
        ),
    ],
)
def test_invalid_arguments_raise(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path)


def test_unknown_method_raises():
    from alignsphere.data import get_preset, load_dataset

    train = load_dataset("digits", split="train")
    with pytest.raises(ValueError, match="unknown methods"):
        train_circle_encoders(
            train, get_preset("digits"), _digits_settings(), methods=("byol",)
        )


def test_cifar10_image_folder(cifar10_jpg_root, tmp_path):
    settings = dataclasses.replace(
        DEFAULT_SETTINGS["cifar10"], epochs=1, batch_size=100, train_size=None
    )
    report = make_circle_figure(
        "cifar10", tmp_path, data_root=cifar10_jpg_root, settings=settings
    )
    assert (tmp_path / "circle_cifar10.png").stat().st_size > 10_000
    assert len(report.encoders) == 4
    assert all(math.isfinite(row["uniformity"]) for row in report.encoders)
