"""Exact, sampled and population uniformity, and alignment, as metrics."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from alignsphere import alignment, uniformity, uniformity_optimum, uniformity_sampled
from alignsphere.metrics import log_bessel_iv


def unit(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(
        torch.randn(*shape, generator=g, dtype=dtype), dim=1
    )


def direct_float64(x: torch.Tensor, t: float) -> float:
    """All pairs i < j from torch.pdist in float64, with a log-sum-exp."""
    exponents = -t * torch.pdist(x.double()).pow(2)
    return float(torch.logsumexp(exponents, 0) - math.log(exponents.numel()))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 300),
    d=st.integers(1, 40),
    t=st.floats(0.1, 50),
    block=st.integers(1, 257),
    seed=st.integers(0, 2**31 - 1),
)
def test_blockwise_matches_direct(n, d, t, block, seed):
    x = unit((n, d), seed)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    expected = direct_float64(x, t)
    assert uniformity(x, t, block_size=block) == pytest.approx(
        expected, rel=1e-6, abs=1e-12
    )
    assert uniformity(x[order], t, block_size=block) == pytest.approx(
        expected, rel=1e-6, abs=1e-12
    )


@pytest.mark.parametrize("t", [0.1, 2.0, 19.9, 20.1, 50.0, 500.0])
def test_float32_default_tiles_match_direct(t):
    x = unit((2500, 32), 1)
    assert uniformity(x.float(), t) == pytest.approx(direct_float64(x, t), rel=1e-5)


def test_uniformity_closed_form_cases():
    three = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert uniformity(three, 2) == pytest.approx(
        math.log((1 + 2 * math.exp(-4)) / 3), abs=1e-7
    )
    assert uniformity(
        torch.tensor([[10.0, 0.0], [0.0, 10.0]]), normalize=True
    ) == pytest.approx(-4.0, abs=1e-6)
    same = torch.nn.functional.normalize(torch.tensor([[2.0, 3.0], [2.0, 3.0]]), dim=1)
    assert uniformity(same) == 0.0


def test_uniformity_huge_t_is_finite_and_exact():
    x = unit((50, 3), 2)
    assert uniformity(x, 1e5) == pytest.approx(direct_float64(x, 1e5), rel=1e-9)


def test_uniformity_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        uniformity(torch.ones(1, 4) / 2)
    with pytest.raises(ValueError, match="at least 2"):
        uniformity(torch.ones(0, 4))
    with pytest.raises(ValueError, match="unit L2 norm"):
        uniformity(torch.tensor([[10.0, 0.0], [0.0, 10.0]]))
    with pytest.raises(ValueError, match="zero row"):
        uniformity(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), normalize=True)
    with pytest.raises(ValueError, match="block_size"):
        uniformity(unit((4, 2), 0), block_size=0)


@pytest.mark.parametrize(
    ("d", "expected"),
    [(2, -1.5750272), (128, -3.9375300), (384, -3.9791678), (4096, -3.9980469)],
)
def test_optimum_reference_values(d, expected):
    assert uniformity_optimum(d, 2) == pytest.approx(expected, abs=5e-8)


def test_optimum_closed_forms():
    # S^0 is the two points {-1, 1}: E exp(-t|u-v|^2) = (1 + e^{-4t}) / 2.
    for t in (0.5, 2.0, 7.0):
        assert uniformity_optimum(1, t) == pytest.approx(
            math.log((1 + math.exp(-4 * t)) / 2), rel=1e-12
        )
    # On S^2 the inner product is uniform on [-1, 1]: E = (1 - e^{-4t}) / (4t).
    for t in (0.5, 2.0, 7.0):
        assert uniformity_optimum(3, t) == pytest.approx(
            math.log((1 - math.exp(-4 * t)) / (4 * t)), rel=1e-12
        )


def test_log_bessel_matches_scipy_where_representable():
    special = pytest.importorskip("scipy.special")
    for order, z in [(0, 4.0), (0.5, 1.0), (63, 4.0), (10, 100.0), (191, 4.0)]:
        assert log_bessel_iv(order, z) == pytest.approx(
            math.log(special.iv(order, z)), rel=1e-12
        )


@pytest.mark.parametrize("d", [2, 16, 128])
def test_optimum_matches_monte_carlo(d):
    x = unit((6000, d), d, torch.float32)
    sampled = uniformity(x, 2)
    # The all-pairs mean of 6000 uniform points has a relative standard error
    # well under 1e-2 at these d.
    assert sampled == pytest.approx(uniformity_optimum(d, 2), abs=0.02)


def test_optimum_finite_for_large_d_and_bad_d():
    for d in (343, 344, 395, 1024, 4096, 16384):
        assert math.isfinite(uniformity_optimum(d))
    with pytest.raises(ValueError, match="d must be"):
        uniformity_optimum(0)


def test_sampled_interval_covers_exact():
    x = unit((3000, 8), 3, torch.float32)
    exact = uniformity(x, 2)
    estimate = uniformity_sampled(
        x, 2, num_pairs=200_000, generator=torch.Generator().manual_seed(0)
    )
    assert estimate.low < exact < estimate.high
    assert estimate.high - estimate.low < 0.02
    assert estimate.num_pairs == 200_000


def test_sampled_coverage_rate():
    x = unit((400, 4), 4, torch.float32)
    exact = uniformity(x, 2)
    g = torch.Generator().manual_seed(1)
    hits = 0
    for _ in range(200):
        est = uniformity_sampled(x, 2, num_pairs=2000, generator=g)
        hits += est.low < exact < est.high
    # 95 % intervals: 200 draws cover between about 180 and 198 times.
    assert 176 <= hits <= 200


def test_sampled_large_t_finite():
    x = unit((100, 3), 5)
    estimate = uniformity_sampled(
        x, 1e4, num_pairs=10_000, generator=torch.Generator().manual_seed(0)
    )
    assert math.isfinite(estimate.value)
    assert math.isfinite(estimate.low)


def test_sampled_bad_inputs():
    x = unit((10, 3), 6)
    with pytest.raises(ValueError, match="confidence"):
        uniformity_sampled(x, confidence=1.5)
    with pytest.raises(ValueError, match="num_pairs"):
        uniformity_sampled(x, num_pairs=1)


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5])
def test_alignment_matches_reference(alpha):
    x, y = unit((1000, 6), 7), unit((1000, 6), 8)
    expected = float((x - y).norm(dim=1).pow(alpha).mean())
    assert alignment(x, y, alpha) == pytest.approx(expected, rel=1e-12)
    assert alignment(x, x, alpha) == 0.0


def test_alignment_error_names_row_across_chunks():
    x = unit((70_000, 2), 9, torch.float32)
    y = x.clone()
    y[66_000] = math.nan
    with pytest.raises(ValueError, match=r"row\(s\) 66000"):
        alignment(x, y)
    with pytest.raises(ValueError, match="same number of rows"):
        alignment(x, y[:-1])
