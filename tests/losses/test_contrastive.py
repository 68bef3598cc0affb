"""Contrastive losses against a float64 reference written as plain cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch

from alignsphere import contrastive_loss, contrastive_queue_loss
from alignsphere.losses import ContrastiveLoss, ContrastiveQueueLoss


def unit(rows, dtype=torch.float64):
    return torch.nn.functional.normalize(torch.as_tensor(rows, dtype=dtype), dim=1)


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Average over the 2N anchors of -log softmax at the positive, self excluded."""
    z = torch.cat([z1, z2]).double()
    n = z1.shape[0]
    total = 0.0
    for a in range(2 * n):
        positive = a + n if a < n else a - n
        sims = [float(z[a] @ z[b]) / tau for b in range(2 * n) if b != a]
        log_denominator = math.log(sum(math.exp(s) for s in sims))
        total += log_denominator - float(z[a] @ z[positive]) / tau
    return total / (2 * n)


def test_nt_xent_orthogonal_pairs_tau_1():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert contrastive_loss(z, z, 1.0).item() == pytest.approx(
        math.log(1 + 2 / math.e), abs=1e-7
    )
    assert contrastive_loss(z, z, 1.0).item() == pytest.approx(0.5514447, abs=1e-7)


def test_nt_xent_orthogonal_pairs_tau_half():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert contrastive_loss(z, z, 0.5).item() == pytest.approx(0.2395448, abs=1e-7)


@pytest.mark.parametrize("tau", [0.07, 0.5, 1.0, 10.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_nt_xent_identical_rows_log7(tau, dtype):
    z = unit(torch.ones(4, 3), dtype)
    assert contrastive_loss(z, z, tau).item() == pytest.approx(math.log(7), abs=1e-6)


def test_queue_loss_tiny_value_finite_gradient():
    q = torch.tensor([[1.0, 0.0]], requires_grad=True)
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0]])
    value = contrastive_queue_loss(q, k, queue, tau=0.01)
    assert value.item() == pytest.approx(math.exp(-100), rel=1e-3)
    assert value.item() < 1e-40
    value.backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_nt_xent_matches_reference(tau):
    g = torch.Generator().manual_seed(0)
    z1, z2 = unit(torch.randn(6, 5, generator=g)), unit(torch.randn(6, 5, generator=g))
    assert contrastive_loss(z1, z2, tau).item() == pytest.approx(
        reference_nt_xent(z1, z2, tau), rel=1e-9
    )


def test_nt_xent_gradcheck():
    g = torch.Generator().manual_seed(1)
    z1 = unit(torch.randn(4, 3, generator=g)).requires_grad_()
    z2 = unit(torch.randn(4, 3, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: contrastive_loss(a, b, 0.3), (z1, z2), eps=1e-7, atol=1e-5
    )


def test_queue_loss_matches_cross_entropy():
    g = torch.Generator().manual_seed(2)
    q, k = unit(torch.randn(5, 4, generator=g)), unit(torch.randn(5, 4, generator=g))
    queue = unit(torch.randn(13, 4, generator=g))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / 0.07
    expected = torch.nn.functional.cross_entropy(
        logits, torch.zeros(5, dtype=torch.long)
    )
    assert contrastive_queue_loss(q, k, queue, 0.07).item() == pytest.approx(
        expected.item(), rel=1e-9
    )


def test_queue_loss_gradcheck():
    g = torch.Generator().manual_seed(3)
    q = unit(torch.randn(3, 4, generator=g)).requires_grad_()
    k = unit(torch.randn(3, 4, generator=g))
    queue = unit(torch.randn(6, 4, generator=g))
    assert torch.autograd.gradcheck(
        lambda v: contrastive_queue_loss(v, k, queue, 0.2), (q,), eps=1e-7, atol=1e-5
    )


def test_nt_xent_small_tau_float16_finite():
    g = torch.Generator().manual_seed(4)
    z1 = unit(torch.randn(32, 8, generator=g), torch.float16).requires_grad_()
    z2 = unit(torch.randn(32, 8, generator=g), torch.float16)
    value = contrastive_loss(z1, z2, 0.01)
    value.backward()
    assert math.isfinite(value.item())
    assert torch.isfinite(z1.grad).all()


def test_nt_xent_bad_inputs():
    z = unit([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="tau must be"):
        contrastive_loss(z, z, 0)
    with pytest.raises(ValueError, match="same shape"):
        contrastive_loss(z, z[:1])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        contrastive_loss(z[:1], z[:1])


def test_contrastive_modules_match_functions():
    g = torch.Generator().manual_seed(5)
    z1, z2 = unit(torch.randn(4, 3, generator=g)), unit(torch.randn(4, 3, generator=g))
    queue = unit(torch.randn(6, 3, generator=g))
    assert ContrastiveLoss(0.3)(z1, z2) == contrastive_loss(z1, z2, 0.3)
    assert ContrastiveQueueLoss(0.3)(z1, z2, queue) == contrastive_queue_loss(
        z1, z2, queue, 0.3
    )
