"""Samplers and log-partition functions of the sphere distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from alignsphere.theory.distributions import (
    EmpiricalSphere,
    FeaturePairs,
    PerturbedPairs,
    UniformSphere,
    VonMisesFisher,
    VonMisesFisherMixture,
    sample_vmf,
)
from alignsphere.theory.special import vmf_mean_resultant_length


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mean_and_error(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std()) / math.sqrt(values.numel())


@pytest.mark.parametrize("dim", [2, 3, 16, 128])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 5.0, 50.0, 1000.0])
def test_vmf_mean_resultant_length_matches_closed_form(dim, kappa):
    mean = torch.randn(dim, generator=_generator(dim), dtype=torch.float64)
    mean = mean / mean.norm()
    x = sample_vmf(mean, kappa, 20_000, _generator(1))
    cosine_mean, error = _mean_and_error(x @ mean)
    assert abs(cosine_mean - float(vmf_mean_resultant_length(dim, kappa))) < 4 * error


@pytest.mark.parametrize("kappa", [0.0, 3.0, 1e4])
def test_vmf_samples_are_unit_rows(kappa):
    x = sample_vmf(torch.tensor([1.0, 2.0, 2.0]), kappa, 5000, _generator())
    assert x.shape == (5000, 3)
    assert x.dtype == torch.float64
    assert torch.allclose(x.norm(dim=1), torch.ones(5000, dtype=torch.float64))


def test_vmf_sample_mean_points_at_mean_direction():
    mean = torch.tensor([0.6, -0.8, 0.0], dtype=torch.float64)
    x = sample_vmf(mean, 20.0, 20_000, _generator())
    direction = x.mean(dim=0) / x.mean(dim=0).norm()
    assert float(direction @ mean) > 0.9999


def test_vmf_cosines_match_scipy_sampler():
    dim, kappa = 5, 10.0
    mean = np.zeros(dim)
    mean[0] = 1.0
    reference = stats.vonmises_fisher(mean, kappa).rvs(20_000, random_state=0) @ mean
    ours = sample_vmf(
        torch.from_numpy(mean), kappa, 20_000, _generator()
    ) @ torch.from_numpy(mean)
    assert stats.ks_2samp(ours.numpy(), reference).pvalue > 1e-3


def test_vmf_zero_count_and_reproducible_draws():
    mean = torch.tensor([0.0, 1.0])
    assert sample_vmf(mean, 4.0, 0, _generator()).shape == (0, 2)
    first = sample_vmf(mean, 4.0, 100, _generator(7))
    second = sample_vmf(mean, 4.0, 100, _generator(7))
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("mean", "kappa", "message"),
    [
        (torch.zeros(3), 1.0, "non-zero"),
        (torch.tensor([1.0]), 1.0, "at least 2 entries"),
        (torch.tensor([1.0, 0.0]), -1.0, "kappa"),
        (torch.tensor([1.0, 0.0]), math.inf, "kappa"),
    ],
)
def test_vmf_rejects_invalid_parameters(mean, kappa, message):
    with pytest.raises(ValueError, match=message):
        sample_vmf(mean, kappa, 10)


def _monte_carlo_log_mean_exp_dot(distribution, v, n=400_000):
    samples = distribution.sample(n, _generator(3))
    values = torch.exp(samples @ v.T)  # (n, rows of v)
    mean = values.mean(dim=0)
    error = values.std(dim=0) / math.sqrt(n)
    return mean, error


@pytest.mark.parametrize(
    "distribution",
    [
        UniformSphere(4),
        VonMisesFisher([0.0, 0.0, 1.0, 0.0], 6.0),
        VonMisesFisherMixture.random(4, 3, 15.0, _generator(5)),
    ],
    ids=["uniform", "vmf", "mixture"],
)
def test_log_mean_exp_dot_matches_monte_carlo(distribution):
    v = torch.randn(5, 4, dtype=torch.float64, generator=_generator(11)) * 1.5
    closed = distribution.log_mean_exp_dot(v).exp()
    mean, error = _monte_carlo_log_mean_exp_dot(distribution, v)
    assert bool((closed - mean).abs().le(4 * error).all()), (closed, mean, error)


def test_mixture_density_integrates_to_one_on_circle():
    mixture = VonMisesFisherMixture(
        torch.tensor([[1.0, 0.0], [0.0, -1.0]]), [2.0, 30.0], weights=[1.0, 3.0]
    )
    theta = torch.linspace(-math.pi, math.pi, 100_001, dtype=torch.float64)
    points = torch.stack([theta.cos(), theta.sin()], dim=1)
    density = mixture.log_density(points).exp()
    assert float(torch.trapezoid(density, theta)) == pytest.approx(1.0, rel=1e-8)


def test_mixture_sample_weights_components():
    means = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    mixture = VonMisesFisherMixture(means, 200.0, weights=[1.0, 3.0])
    x = mixture.sample(20_000, _generator())
    share = float((x[:, 0] < 0).double().mean())
    assert share == pytest.approx(0.75, abs=0.015)


def test_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        VonMisesFisherMixture(torch.eye(2), 1.0, weights=[1.0, 0.0])
    with pytest.raises(ValueError, match="2 entries"):
        VonMisesFisherMixture(torch.eye(2), [1.0, 2.0, 3.0])


def test_perturbed_pairs_keep_the_vmf_marginal():
    dim, kappa = 3, 5.0
    mean = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    pairs = PerturbedPairs(VonMisesFisher(mean, kappa), noise=0.5)
    x, y = pairs.sample(40_000, _generator())
    expected = float(vmf_mean_resultant_length(dim, kappa))
    for rows in (x, y):
        value, error = _mean_and_error(rows @ mean)
        assert abs(value - expected) < 4 * error


def test_perturbed_pairs_are_close():
    pairs = PerturbedPairs(UniformSphere(16), noise=0.3)
    x, y = pairs.sample(10_000, _generator())
    assert torch.allclose(y.norm(dim=1), torch.ones(10_000, dtype=torch.float64))
    # E||x - y||^2 = noise^2 (d - 1) / d to first order in the noise.
    expected = 0.3**2 * 15 / 16
    assert float((x - y).square().sum(dim=1).mean()) == pytest.approx(expected, rel=0.1)


def test_perturbed_pairs_reject_non_positive_noise():
    with pytest.raises(ValueError, match="noise"):
        PerturbedPairs(UniformSphere(3), 0.0)


def test_empirical_log_mean_exp_dot_is_exact():
    rows = torch.randn(50, 6, dtype=torch.float64, generator=_generator())
    distribution = EmpiricalSphere(rows)
    v = torch.randn(4, 6, dtype=torch.float64, generator=_generator(1))
    units = rows / rows.norm(dim=1, keepdim=True)
    expected = torch.exp(v @ units.T).mean(dim=1).log()
    assert torch.allclose(distribution.log_mean_exp_dot(v), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (torch.zeros(3, 2), "zero vectors"),
        (torch.tensor([[1.0, math.nan]]), "NaN"),
        (torch.ones(4), "shape"),
    ],
)
def test_empirical_rejects_invalid_rows(rows, message):
    with pytest.raises(ValueError, match=message):
        EmpiricalSphere(rows)


def test_empirical_has_no_density():
    with pytest.raises(NotImplementedError):
        EmpiricalSphere(torch.eye(3)).log_density(torch.eye(3))


def test_feature_pairs_draw_matching_rows_in_both_orders():
    view1 = torch.randn(20, 4, dtype=torch.float64, generator=_generator())
    view2 = view1 + 0.01
    pairs = FeaturePairs(view1, view2)
    assert pairs.marginal.rows.shape == (40, 4)
    x, y = pairs.sample(2000, _generator(1))
    assert bool(((x * y).sum(dim=1) > 0.99).all())
    # x comes from view1 about half of the time.
    units = view1 / view1.norm(dim=1, keepdim=True)
    from_first = (x[:, None, :] - units[None]).abs().sum(dim=2).min(
        dim=1
    ).values < 1e-12
    assert float(from_first.double().mean()) == pytest.approx(0.5, abs=0.05)


def test_feature_pairs_reject_mismatched_views():
    with pytest.raises(ValueError, match="same shape"):
        FeaturePairs(torch.ones(3, 2), torch.ones(4, 2))
