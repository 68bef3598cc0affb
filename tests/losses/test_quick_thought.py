"""quick_thought_loss against a float64 cross-entropy reference and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from alignsphere.losses import Objective, QuickThoughtLoss, quick_thought_loss


def _unit(n: int, d: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=generator, dtype=dtype), dim=1)


def _reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Per-row softmax written out in float64 Python arithmetic."""
    n = z1.shape[0]
    a, b = z1.double().tolist(), z2.double().tolist()

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v, strict=True))

    total = 0.0
    for i in range(n):
        forward = [dot(a[i], b[j]) / tau for j in range(n)]
        backward = [dot(b[i], a[j]) / tau for j in range(n)]
        for logits in (forward, backward):
            top = max(logits)
            log_sum = top + math.log(sum(math.exp(x - top) for x in logits))
            total += log_sum - logits[i]
    return total / (2 * n)


@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
def test_matches_float64_reference(tau):
    z1, z2 = _unit(9, 5, 0), _unit(9, 5, 1)
    value = quick_thought_loss(z1, z2, tau)
    assert value.item() == pytest.approx(_reference(z1, z2, tau), rel=1e-10)


def test_float32_close_to_reference():
    z1, z2 = _unit(16, 8, 2, torch.float32), _unit(16, 8, 3, torch.float32)
    assert quick_thought_loss(z1, z2, 0.1).item() == pytest.approx(
        _reference(z1, z2, 0.1), rel=1e-5
    )


def test_identity_closed_form():
    # Orthonormal pairs with tau = 1: each row scores e^1 against N - 1 zeros.
    z = torch.eye(3, dtype=torch.float64)
    expected = math.log(1 + 2 / math.e)
    assert quick_thought_loss(z, z, 1.0).item() == pytest.approx(expected, rel=1e-12)


def test_differs_from_nt_xent():
    from alignsphere.losses import contrastive_loss

    z1, z2 = _unit(8, 4, 4), _unit(8, 4, 5)
    assert quick_thought_loss(z1, z2, 0.5).item() != pytest.approx(
        contrastive_loss(z1, z2, 0.5).item()
    )


def test_gradcheck():
    z1 = _unit(5, 3, 6).requires_grad_()
    z2 = _unit(5, 3, 7).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: quick_thought_loss(a, b, 0.2), (z1, z2)
    )


def test_small_tau_stays_finite():
    z1, z2 = _unit(6, 4, 8), _unit(6, 4, 9)
    z1.requires_grad_()
    value = quick_thought_loss(z1, z2, 1e-4)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(z1.grad).all()


def test_rejects_single_pair():
    z = _unit(1, 3, 10)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        quick_thought_loss(z, z)


def test_rejects_invalid_tau():
    z = _unit(4, 3, 11)
    with pytest.raises(ValueError, match="tau"):
        quick_thought_loss(z, z, tau=0.0)


def test_module_and_objective_term():
    z1, z2 = _unit(7, 4, 12), _unit(7, 4, 13)
    expected = quick_thought_loss(z1, z2, 0.3)
    assert QuickThoughtLoss(0.3)(z1, z2).item() == pytest.approx(expected.item())
    output = Objective("2*quick_thought(tau=0.3)")(z1, z2)
    assert output.terms["quick_thought"].item() == pytest.approx(expected.item())
    assert output.total.item() == pytest.approx(2 * expected.item())


def test_objective_default_tau():
    objective = Objective("quick_thought")
    assert objective.terms[0].params["tau"] == 0.1
