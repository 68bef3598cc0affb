"""torchmetrics classes: dataset values over batches, not batch averages."""

from __future__ import annotations

import pytest
import torch

from alignsphere import alignment, uniformity
from alignsphere.metrics.streaming import Alignment, Uniformity


def unit(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(
        torch.randn(*shape, generator=g, dtype=torch.float64), dim=1
    )


def test_uniformity_over_batches_equals_whole_dataset():
    x = unit((300, 5), 0)
    metric = Uniformity(t=2.0)
    batch_values = []
    for batch in x.split(64):
        metric.update(batch)
        batch_values.append(uniformity(batch, 2.0))
    exact = uniformity(x, 2.0)
    assert metric.compute().item() == pytest.approx(exact, rel=1e-12)
    # The average of per-batch values is a different (wrong) number.
    assert sum(batch_values) / len(batch_values) != pytest.approx(exact, rel=1e-3)


def test_alignment_over_batches_equals_whole_dataset():
    x, y = unit((250, 4), 1), unit((250, 4), 2)
    metric = Alignment(alpha=1.0)
    for a, b in zip(x.split(32), y.split(32), strict=True):
        metric.update(a, b)
    assert metric.compute().item() == pytest.approx(alignment(x, y, 1.0), rel=1e-12)


def test_reset_and_empty_compute():
    metric = Uniformity()
    metric.update(unit((1, 3), 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        metric.compute()
    metric.reset()
    metric.update(unit((5, 3), 4))
    assert metric.compute().item() == pytest.approx(
        uniformity(unit((5, 3), 4)), rel=1e-12
    )
    assert metric.optimum() < 0


def test_streaming_rejects_bad_rows():
    with pytest.raises(ValueError, match="unit L2 norm"):
        Uniformity().update(torch.ones(3, 2))
    with pytest.raises(ValueError, match="same shape"):
        Alignment().update(unit((3, 2), 5), unit((2, 2), 6))
