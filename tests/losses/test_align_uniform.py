"""Alignment and uniformity losses against float64 brute-force references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alignsphere import align_loss, uniform_loss, uniform_queue_loss
from alignsphere.losses import AlignLoss, UniformLoss, UniformQueueLoss


def unit(rows, dtype=torch.float64):
    return torch.nn.functional.normalize(torch.as_tensor(rows, dtype=dtype), dim=1)


def brute_uniform(x: torch.Tensor, t: float) -> float:
    rows = x.double().tolist()
    terms = [
        math.exp(-t * sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
        for u, v in itertools.combinations(rows, 2)
    ]
    return math.log(sum(terms) / len(terms))


def brute_align(x: torch.Tensor, y: torch.Tensor, alpha: float) -> float:
    dists = [
        math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True))) ** alpha
        for u, v in zip(x.double().tolist(), y.double().tolist(), strict=True)
    ]
    return sum(dists) / len(dists)


def test_uniform_unnormalised_rows_rejected():
    x = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    with pytest.raises(ValueError, match="unit L2 norm.*normalize=True"):
        uniform_loss(x)


def test_uniform_unnormalised_rows_with_normalize():
    x = torch.tensor([[10.0, 0.0], [0.0, 10.0]], requires_grad=True)
    value = uniform_loss(x, t=2, normalize=True)
    assert value.item() == pytest.approx(-4.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_uniform_duplicate_row_value_and_gradient():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    value = uniform_loss(x, t=2)
    expected = math.log((1 + 2 * math.exp(-4)) / 3)
    assert expected == pytest.approx(-1.0626360, abs=1e-7)
    assert value.item() == pytest.approx(expected, abs=1e-6)
    value.backward()
    assert torch.isfinite(x.grad).all()


def test_uniform_two_identical_rows_is_zero():
    x = unit([[2.0, 3.0], [2.0, 3.0]], torch.float32).requires_grad_()
    value = uniform_loss(x)
    assert value.item() == pytest.approx(0.0, abs=1e-7)
    value.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("rows", [1, 0])
def test_uniform_too_few_rows(rows):
    with pytest.raises(ValueError, match="at least 2"):
        uniform_loss(torch.ones(rows, 3) / math.sqrt(3))


@pytest.mark.parametrize("t", [0.0, -1.0, math.nan, math.inf])
def test_uniform_invalid_t(t):
    with pytest.raises(ValueError, match="t must be"):
        uniform_loss(unit([[1, 0], [0, 1]]), t=t)


def test_uniform_nan_row_named():
    x = unit([[1, 0], [0, 1], [1, 1]])
    x[2, 0] = math.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values in row\(s\) 2"):
        uniform_loss(x)


def test_uniform_large_t_stays_finite():
    x = unit(torch.randn(20, 5, generator=torch.Generator().manual_seed(0)))
    value = uniform_loss(x, t=1e4)
    assert math.isfinite(value.item())
    assert value.item() == pytest.approx(brute_uniform_logspace(x, 1e4), rel=1e-9)


def brute_uniform_logspace(x: torch.Tensor, t: float) -> float:
    rows = x.double().tolist()
    exps = [
        -t * sum((a - b) ** 2 for a, b in zip(u, v, strict=True))
        for u, v in itertools.combinations(rows, 2)
    ]
    peak = max(exps)
    return peak + math.log(sum(math.exp(e - peak) for e in exps) / len(exps))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 12),
    d=st.integers(1, 6),
    t=st.floats(0.1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_uniform_matches_brute_force(n, d, t, seed):
    x = unit(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)))
    assert uniform_loss(x, t).item() == pytest.approx(
        brute_uniform(x, t), rel=1e-9, abs=1e-12
    )


def test_uniform_float16_input_under_autocast():
    x64 = unit(torch.randn(64, 16, generator=torch.Generator().manual_seed(1)))
    x16 = x64.half()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = uniform_loss(x16, t=2)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(brute_uniform(x64, 2), abs=2e-3)


def test_unit_check_accepts_half_rounding_rejects_off_rows():
    x = unit(
        torch.randn(256, 384, generator=torch.Generator().manual_seed(2)), torch.float32
    )
    uniform_loss(x.half())
    uniform_loss(x.bfloat16())
    uniform_loss(torch.nn.functional.normalize(x.half(), dim=1))
    with pytest.raises(ValueError, match="row\\(s\\) 3"):
        off = x.clone()
        off[3] *= 1.05
        uniform_loss(off.bfloat16())


def test_uniform_gradcheck():
    x = unit(torch.randn(6, 3, generator=torch.Generator().manual_seed(3)))
    x.requires_grad_()
    # The loss is defined on unit rows; gradcheck's finite differences leave the
    # sphere by 1e-6, inside the float64 tolerance of the unit-norm check.
    assert torch.autograd.gradcheck(
        lambda v: uniform_loss(v, 2.5), (x,), eps=1e-7, atol=1e-5
    )


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5])
def test_align_identical_pair_zero_gradient(alpha):
    x = unit([[0.6, 0.8], [1.0, 0.0]]).requires_grad_()
    y = x.detach().clone()
    value = align_loss(x, y, alpha)
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 10),
    d=st.integers(1, 6),
    alpha=st.floats(0.2, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_align_matches_brute_force(n, d, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = unit(torch.randn(n, d, generator=g)), unit(torch.randn(n, d, generator=g))
    assert align_loss(x, y, alpha).item() == pytest.approx(
        brute_align(x, y, alpha), rel=1e-9
    )


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5, 3.0])
def test_align_gradcheck(alpha):
    g = torch.Generator().manual_seed(4)
    x = unit(torch.randn(5, 3, generator=g)).requires_grad_()
    y = unit(torch.randn(5, 3, generator=g))
    assert torch.autograd.gradcheck(
        lambda v: align_loss(v, y, alpha), (x,), eps=1e-7, atol=1e-5
    )


def test_align_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        align_loss(unit([[1, 0], [0, 1]]), unit([[1, 0]]))


@pytest.mark.parametrize("alpha", [0, -2])
def test_align_invalid_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be"):
        align_loss(unit([[1, 0]]), unit([[1, 0]]), alpha)


def test_integer_and_1d_inputs_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        uniform_loss(torch.tensor([[1, 0], [0, 1]]))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        uniform_loss(torch.tensor([1.0, 0.0]))


def brute_queue_uniform(q, queue, t, intra):
    exps = [
        -t * float((a - b).pow(2).sum()) for a in q.double() for b in queue.double()
    ]
    if intra:
        exps += [
            -t * float((a - b).pow(2).sum())
            for a, b in itertools.combinations(q.double(), 2)
        ]
    peak = max(exps)
    return peak + math.log(sum(math.exp(e - peak) for e in exps) / len(exps))


@pytest.mark.parametrize("intra", [True, False])
@pytest.mark.parametrize("t", [2.0, 3.0, 40.0])
def test_uniform_queue_matches_brute_force(intra, t):
    g = torch.Generator().manual_seed(5)
    q = unit(torch.randn(7, 4, generator=g))
    queue = unit(torch.randn(11, 4, generator=g))
    value = uniform_queue_loss(q, queue, t, intra_batch=intra).item()
    assert value == pytest.approx(brute_queue_uniform(q, queue, t, intra), rel=1e-9)


def test_uniform_queue_gradcheck():
    g = torch.Generator().manual_seed(6)
    q = unit(torch.randn(4, 3, generator=g)).requires_grad_()
    queue = unit(torch.randn(9, 3, generator=g))
    assert torch.autograd.gradcheck(
        lambda v: uniform_queue_loss(v, queue, 3.0), (q,), eps=1e-7, atol=1e-5
    )


def test_modules_match_functions():
    g = torch.Generator().manual_seed(7)
    x, y = unit(torch.randn(8, 4, generator=g)), unit(torch.randn(8, 4, generator=g))
    queue = unit(torch.randn(5, 4, generator=g))
    assert AlignLoss(1.0)(x, y) == align_loss(x, y, 1.0)
    assert UniformLoss(3.0)(x) == uniform_loss(x, 3.0)
    assert UniformQueueLoss(3.0, intra_batch=False)(x, queue) == uniform_queue_loss(
        x, queue, 3.0, intra_batch=False
    )
