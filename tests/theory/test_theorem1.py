"""Theorem 1: the contrastive loss minus log M, its limit, and the gap."""

from __future__ import annotations

import math

import pytest
import torch

from alignsphere import contrastive_queue_loss
from alignsphere.theory.distributions import (
    FeaturePairs,
    PerturbedPairs,
    UniformSphere,
    VonMisesFisher,
)
from alignsphere.theory.special import log_mean_exp_dot_uniform
from alignsphere.theory.theorem1 import (
    contrastive_terms_by_prefix,
    estimate_theorem1,
    fit_gap_power_law,
)

COUNTS = [1, 4, 16, 64, 256, 1024]


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def uniform_result():
    pairs = PerturbedPairs(UniformSphere(3), 0.3)
    return estimate_theorem1(
        pairs,
        0.5,
        negative_counts=COUNTS,
        num_pools=64,
        anchors_per_pool=32,
        limit_pairs=1 << 14,
        fit_min_negatives=64,
        bootstrap_samples=100,
        generator=_generator(),
    )


def test_prefix_loss_matches_library_loss():
    generator = _generator(1)
    pairs = PerturbedPairs(UniformSphere(5), 0.4)
    x, y = pairs.sample(8, generator)
    negatives = UniformSphere(5).sample(64, generator)
    tau = 0.3
    log_z = UniformSphere(5).log_mean_exp_dot(y / tau)
    plain, _ = contrastive_terms_by_prefix(x, y, negatives, log_z, tau, [1, 7, 64])
    for column, m in enumerate([1, 7, 64]):
        for anchor in range(8):
            # The queue loss compares the negatives with its query, here y.
            expected = contrastive_queue_loss(
                y[anchor : anchor + 1],
                x[anchor : anchor + 1],
                negatives[:m],
                tau,
            ).item() - math.log(m)
            assert plain[anchor, column].item() == pytest.approx(expected, abs=1e-10)


def test_prefix_gap_is_deviation_minus_control_variate():
    generator = _generator(2)
    x, y = PerturbedPairs(UniformSphere(4), 0.3).sample(6, generator)
    negatives = UniformSphere(4).sample(32, generator)
    tau = 0.5
    log_z = UniformSphere(4).log_mean_exp_dot(y / tau)
    plain, gap = contrastive_terms_by_prefix(x, y, negatives, log_z, tau, [32])
    integrand = log_z - (x * y).sum(dim=1) / tau
    mean_ratio = torch.exp(y @ negatives.T / tau - log_z[:, None]).mean(dim=1)
    expected = plain[:, 0] - integrand - (mean_ratio - 1)
    assert torch.allclose(gap[:, 0], expected, atol=1e-12)


def test_prefix_rejects_counts_beyond_pool():
    x = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        contrastive_terms_by_prefix(x, x, x, torch.zeros(3), 0.5, [4])


def test_uniform_limit_uses_closed_form(uniform_result):
    # For uniform features log E e^{x-.y/tau} is the same for every y.
    closed = float(log_mean_exp_dot_uniform(1 / 0.5, 3))
    assert uniform_result.uniformity_term == pytest.approx(closed, rel=1e-12)
    assert uniform_result.limit == pytest.approx(
        uniform_result.alignment_term + uniform_result.uniformity_term
    )


def test_uniform_limit_matches_monte_carlo():
    # Limit = -(1/tau) E[x.y] + log E_u e^{u.y/tau}; estimate both by brute force.
    tau, dim, n = 0.5, 3, 1 << 16
    pairs = PerturbedPairs(UniformSphere(dim), 0.3)
    x, y = pairs.sample(n, _generator(5))
    u = UniformSphere(dim).sample(n, _generator(6))
    inner = torch.exp(u[:, 0] / tau)  # y is any unit vector by symmetry
    log_inner = math.log(float(inner.mean()))
    brute = float(-(x * y).sum(dim=1).mean() / tau) + log_inner
    error = float((x * y).sum(dim=1).std()) / tau / math.sqrt(n) + float(
        inner.std() / inner.mean()
    ) / math.sqrt(n)
    result = estimate_theorem1(
        pairs,
        tau,
        negative_counts=[1],
        num_pools=2,
        limit_pairs=n,
        generator=_generator(7),
    )
    assert abs(result.limit - brute) < 4 * error


def test_loss_minus_log_m_approaches_limit(uniform_result):
    last = uniform_result.loss_minus_log_m[-1]
    error = uniform_result.loss_minus_log_m_std_error[-1]
    # At M = 1024 the gap is about c1 / M = 0.003.
    expected = uniform_result.limit + uniform_result.first_order_coefficient / 1024
    assert abs(last - expected) < 4 * error + 4 * uniform_result.limit_std_error


def test_gap_shrinks_with_negatives(uniform_result):
    gaps = uniform_result.gap
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:], strict=False))
    assert gaps[-1] > 0


def test_gap_slope_near_minus_one(uniform_result):
    fit = uniform_result.fit
    assert fit is not None
    assert fit.min_negatives == 64
    assert fit.max_negatives == 1024
    assert -1.1 < fit.slope < -0.9
    assert 0 < fit.slope_std_error < 0.1


def test_gap_times_m_matches_first_order_coefficient(uniform_result):
    m = uniform_result.negative_counts[-1]
    scaled = m * uniform_result.gap[-1]
    scaled_error = m * uniform_result.gap_std_error[-1]
    c1 = uniform_result.first_order_coefficient
    # The next order is O(1/M^2), a few per cent of c1 at M = 1024.
    assert abs(scaled - c1) < 4 * scaled_error + 0.05 * c1


def test_control_variate_shrinks_the_error(uniform_result):
    # Without it, the error at M = 1024 would be that of L(M) itself.
    assert (
        uniform_result.gap_std_error[-1]
        < 0.1 * uniform_result.loss_minus_log_m_std_error[-1]
    )


def test_vmf_encoder_gap_follows_first_order():
    pairs = PerturbedPairs(VonMisesFisher([0.0, 1.0, 0.0], 5.0), 0.3)
    result = estimate_theorem1(
        pairs,
        0.5,
        negative_counts=[256, 512, 1024],
        num_pools=32,
        anchors_per_pool=32,
        limit_pairs=1 << 13,
        fit_min_negatives=256,
        generator=_generator(3),
    )
    scaled = 1024 * result.gap[-1]
    assert scaled == pytest.approx(result.first_order_coefficient, rel=0.1)
    assert result.fit is not None
    assert -1.15 < result.fit.slope < -0.85


def test_feature_pairs_gap_follows_first_order():
    generator = _generator(4)
    view1 = UniformSphere(8).sample(300, generator)
    view2 = torch.nn.functional.normalize(
        view1
        + 0.1 * torch.randn(view1.shape, dtype=torch.float64, generator=generator),
        dim=1,
    )
    result = estimate_theorem1(
        FeaturePairs(view1, view2),
        0.5,
        negative_counts=[256, 1024],
        num_pools=32,
        anchors_per_pool=32,
        limit_pairs=1 << 13,
        generator=generator,
    )
    assert 1024 * result.gap[-1] == pytest.approx(
        result.first_order_coefficient, rel=0.1
    )


def test_fit_recovers_power_law():
    counts = [16, 32, 64, 128, 256]
    noise = 1 + 0.01 * torch.randn(50, len(counts), generator=_generator())
    gaps = 3.0 * torch.tensor(counts, dtype=torch.float64) ** -0.8 * noise
    fit = fit_gap_power_law(counts, gaps, min_negatives=16, generator=_generator(1))
    assert fit is not None
    assert fit.slope == pytest.approx(-0.8, abs=0.01)
    assert fit.coefficient == pytest.approx(3.0, rel=0.05)
    assert fit.num_points == 5


def test_fit_skips_gaps_within_noise():
    counts = [64, 128, 256, 512]
    gaps = torch.randn(40, 4, generator=_generator(), dtype=torch.float64)
    assert fit_gap_power_law(counts, gaps, min_negatives=64) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": 0.5, "negative_counts": [0, 4]}, "negative_counts"),
        ({"tau": 0.5, "num_pools": 1}, "num_pools"),
    ],
)
def test_estimate_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        estimate_theorem1(PerturbedPairs(UniformSphere(3), 0.3), **kwargs)


def test_result_is_json_serialisable(uniform_result):
    import json

    content = json.loads(json.dumps(uniform_result.to_dict()))
    assert content["negative_counts"] == COUNTS
    assert content["fit"]["min_negatives"] == 64
