"""Linear probes: the fast full-batch probe and the protocol of Wang & Isola (2020)."""

from __future__ import annotations

import pytest
import torch

from alignsphere.data import get_preset, load_dataset
from alignsphere.evaluation import linear_probe_fast, linear_probe_paper
from alignsphere.models import build_encoder

torch.set_num_threads(1)


def separable_data(n_per_class: int, seed: int):
    """Three classes around fixed directions; ``seed`` draws the noise only."""
    directions = torch.nn.functional.normalize(
        torch.randn(3, 20, generator=torch.Generator().manual_seed(100))
    )
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    features = 4 * directions[labels] + 0.5 * torch.randn(
        labels.numel(), 20, generator=generator
    )
    return features, labels


def test_fast_probe_separable_data():
    train_x, train_y = separable_data(100, 0)
    test_x, test_y = separable_data(50, 1)
    result = linear_probe_fast(train_x, train_y, test_x, test_y)
    assert result.method == "fast"
    assert result.train_accuracy == 1.0
    assert result.test_accuracy >= 0.99


def test_fast_probe_is_deterministic():
    train_x, train_y = separable_data(30, 0)
    first = linear_probe_fast(train_x, train_y, train_x, train_y)
    second = linear_probe_fast(train_x, train_y, train_x, train_y)
    assert first == second


def test_fast_probe_constant_feature():
    train_x, train_y = separable_data(30, 0)
    train_x[:, 0] = 3.0  # zero variance: standardisation must not divide by 0
    result = linear_probe_fast(train_x, train_y, train_x, train_y)
    assert result.test_accuracy == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x, y: (x[:, :5], y), "dimension"),
        (lambda x, y: (x, y[:-1]), "labels must have shape"),
        (lambda x, y: (x * float("nan"), y), "NaN"),
        (lambda x, y: (x, y * 0), "fewer than two classes"),
    ],
)
def test_fast_probe_rejects_bad_input(change, message):
    x, y = separable_data(10, 0)
    bad_x, bad_y = change(x.clone(), y.clone())
    with pytest.raises(ValueError, match=message):
        if message == "dimension":
            linear_probe_fast(x, y, bad_x, y)
        else:
            linear_probe_fast(bad_x, bad_y, x, y)


def test_paper_probe_on_digits():
    train = load_dataset("digits", split="train", progress=False)
    test = load_dataset("digits", split="test", progress=False)
    torch.manual_seed(0)
    encoder = build_encoder("mlp", input_dim=64, in_channels=1, out_dim=32)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = linear_probe_paper(
        encoder,
        train.images,
        train.labels,
        test.images,
        test.labels,
        preset=get_preset("digits"),
        layer="pooled",
        epochs=8,
    )
    assert result.method == "paper"
    assert result.settings["milestones"] == [5, 6]
    # A random 256-wide ReLU layer keeps digits linearly separable enough.
    assert result.test_accuracy > 0.8
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.training


def test_moco_probe_uses_sgd_protocol():
    from alignsphere.evaluation.linear import MOCO_PROBE

    generator = torch.Generator().manual_seed(0)
    encoder = build_encoder("mlp", out_dim=8)
    images = torch.randint(
        0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=generator
    )
    labels = torch.arange(40) % 2
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = linear_probe_paper(
        encoder,
        images,
        labels,
        images,
        labels,
        preset=get_preset("digits"),
        epochs=2,
        **MOCO_PROBE,
    )
    assert result.settings["optimizer"] == "SGD"
    assert result.settings["lr"] == 30.0
    assert result.settings["gamma"] == 0.1
    assert result.settings["batch_size"] == 256
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key])
