"""Feature extraction and evaluation: eval mode, determinism, model unchanged."""

from __future__ import annotations

import pytest
import torch

from alignsphere.data import get_preset, load_dataset
from alignsphere.evaluation import (
    EvaluationSettings,
    eval_mode,
    evaluate_encoder,
    extract_features,
    format_report,
    resolve_layer,
)
from alignsphere.models import build_encoder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    train = load_dataset("digits", split="train", progress=False)
    test = load_dataset("digits", split="test", progress=False)
    return train.subset(torch.arange(300)), test.subset(torch.arange(120))


def make_encoder():
    torch.manual_seed(0)
    encoder = build_encoder("mlp", input_dim=64, in_channels=1, out_dim=16)
    # Give batch norm non-default running statistics, as after training.
    encoder.train()
    with torch.no_grad():
        encoder(torch.rand(64, 1, 8, 8) * 3)
    return encoder


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(before, module):
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_eval_mode_restores_mixed_flags():
    encoder = make_encoder()
    encoder.train()
    encoder.stages["hidden1"].eval()
    with eval_mode(encoder):
        assert not any(m.training for m in encoder.modules())
        assert not torch.is_grad_enabled()
    assert encoder.training
    assert not encoder.stages["hidden1"].training
    assert encoder.stages["hidden2"].training


def test_extract_features_is_deterministic(digits):
    train, _ = digits
    encoder = make_encoder()
    transform = get_preset("digits").eval_transform()
    first = extract_features(encoder, train.images, transform=transform, batch_size=7)
    second = extract_features(
        encoder, train.images, transform=transform, batch_size=300
    )
    # The batch size must not matter: batch norm uses its running statistics.
    torch.testing.assert_close(first, second, rtol=1e-5, atol=1e-6)
    assert torch.equal(
        first,
        extract_features(encoder, train.images, transform=transform, batch_size=7),
    )


@pytest.mark.parametrize("training", [True, False])
def test_extract_features_leaves_model_unchanged(digits, training):
    train, _ = digits
    encoder = make_encoder()
    encoder.train(training)
    before = snapshot(encoder)
    features = extract_features(encoder, train.images, layer="pooled")
    assert features.shape == (300, 256)
    assert encoder.training is training
    assert all(m.training is training for m in encoder.modules())
    assert_same_state(before, encoder)


def test_resolve_layer_names():
    encoder = make_encoder()
    assert resolve_layer(encoder, "output") == "output"
    assert resolve_layer(encoder, "pooled") == "hidden2"
    assert resolve_layer(encoder, "hidden1") == "hidden1"
    with pytest.raises(ValueError, match="valid layers: .*hidden1"):
        resolve_layer(encoder, "fc7")


def test_evaluate_encoder_deterministic_and_unchanged(digits):
    train, test = digits
    encoder = make_encoder()
    encoder.train()
    before = snapshot(encoder)
    settings = EvaluationSettings(layers=("output", "pooled"), heldout_images=100)
    preset = get_preset("digits")
    first = evaluate_encoder(encoder, train, test, preset, settings)
    second = evaluate_encoder(encoder, train, test, preset, settings)
    assert first == second
    assert encoder.training
    assert_same_state(before, encoder)
    assert set(first["layers"]) == {"output", "pooled"}
    assert first["layers"]["pooled"]["feature_dim"] == 256
    heldout = first["heldout"]
    assert heldout["num_images"] == 100
    assert heldout["uniformity"] >= heldout["uniformity_optimum"] - 0.5
    assert 0 <= heldout["alignment"] <= 4
    table = format_report(first)
    assert "linear probe" in table
    assert "population optimum" in table


def test_evaluate_encoder_leaves_out_unlabelled(digits):
    train, test = digits
    labels = train.labels.clone()
    labels[:100] = -1
    partly = type(train)(train.images, labels, train.classes, name="partly")
    report = evaluate_encoder(
        make_encoder(),
        partly,
        test,
        get_preset("digits"),
        EvaluationSettings(heldout_images=0),
    )
    assert report["data"]["num_probe"] == 200
    assert "heldout" not in report


def test_evaluate_on_probe_set_excludes_self(digits):
    train, _ = digits
    settings = EvaluationSettings(probe="none", knn_k=1, heldout_images=0)
    report = evaluate_encoder(
        make_encoder(), train, train, get_preset("digits"), settings
    )
    knn = report["layers"]["output"]["knn"]
    assert knn["exclude_self"] is True
    # With itself as a neighbour, 1-NN on the bank would score exactly 1.
    assert knn["accuracy"] < 1.0
