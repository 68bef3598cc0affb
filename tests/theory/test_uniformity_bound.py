"""The uniformity bound: uniform samples meet the optimum, vMF scores worse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from alignsphere.metrics import uniformity_optimum
from alignsphere.theory.distributions import UniformSphere, sample_vmf
from alignsphere.theory.uniformity_bound import (
    check_uniform_samples,
    uniform_sample_std_error,
    uniformity_with_std_error,
    vmf_population_uniformity,
    vmf_uniformity_sweep,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dim", [2, 3, 16, 128])
def test_uniform_samples_within_interval_of_optimum(dim):
    check = check_uniform_samples(dim, 2048, generator=_generator(dim))
    assert check.optimum == uniformity_optimum(dim, 2.0)
    assert abs(check.value - check.optimum) < 4 * check.std_error
    assert check.z_score == pytest.approx(
        (check.value - check.optimum) / check.std_error
    )


def _batched_uniformity(samples: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity of each (n, d) sample of a (R, n, d) batch, in float64."""
    n = samples.shape[1]
    kernel = torch.exp(2 * t * (samples @ samples.transpose(1, 2) - 1))
    off_diagonal = kernel.sum(dim=(1, 2)) - kernel.diagonal(dim1=1, dim2=2).sum(dim=1)
    return (off_diagonal / (n * (n - 1))).log()


def test_uniform_std_error_matches_repeated_samples():
    dim, n, repeats = 3, 200, 400
    samples = UniformSphere(dim).sample(repeats * n, _generator(1))
    values = _batched_uniformity(samples.reshape(repeats, n, dim))
    closed = uniform_sample_std_error(dim, n)
    # The spread of 400 values is within about 10 % of the true deviation.
    assert float(values.std()) == pytest.approx(closed, rel=0.2)
    mean_error = closed / math.sqrt(repeats)
    assert abs(float(values.mean()) - uniformity_optimum(dim)) < 4 * mean_error


def test_uniform_std_error_falls_as_one_over_n():
    ratio = uniform_sample_std_error(16, 1000) / uniform_sample_std_error(16, 4000)
    assert ratio == pytest.approx(4.0, rel=0.01)


def test_vmf_population_at_zero_concentration_is_optimum():
    for dim in (2, 3, 16, 384):
        assert vmf_population_uniformity(dim, 0.0) == pytest.approx(
            uniformity_optimum(dim), rel=1e-12
        )


@pytest.mark.parametrize("kappa", [0.5, 3.0, 30.0])
def test_vmf_population_on_circle_matches_double_integral(kappa):
    t = 2.0
    normaliser = (2 * math.pi * special.i0e(kappa)) ** 2

    def integrand(a, b):
        exponent = kappa * (math.cos(a) - 1) + kappa * (math.cos(b) - 1)
        return math.exp(exponent - t * (2 - 2 * math.cos(a - b))) / normaliser

    value, _ = integrate.dblquad(
        integrand, -math.pi, math.pi, -math.pi, math.pi, epsabs=1e-13, epsrel=1e-11
    )
    assert vmf_population_uniformity(2, kappa, t) == pytest.approx(
        math.log(value), abs=1e-9
    )


@pytest.mark.parametrize("dim", [2, 3, 16, 128])
def test_vmf_population_rises_with_concentration(dim):
    kappas = [0.0, 0.1, 1.0, 10.0, 100.0, 300.0]
    values = [vmf_population_uniformity(dim, kappa) for kappa in kappas]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[0] == pytest.approx(uniformity_optimum(dim))
    assert values[-1] < 0


def test_vmf_population_tends_to_zero():
    assert -0.01 < vmf_population_uniformity(3, 1000.0) < 0


@pytest.mark.parametrize(("dim", "kappa"), [(3, 4.0), (16, 30.0), (64, 200.0)])
def test_vmf_samples_match_population(dim, kappa):
    mean = torch.zeros(dim, dtype=torch.float64)
    mean[-1] = 1.0
    sample = sample_vmf(mean, kappa, 3000, _generator(dim))
    measured = uniformity_with_std_error(sample)
    population = vmf_population_uniformity(dim, kappa)
    assert abs(measured.value - population) < 4 * measured.std_error


def test_std_error_estimate_matches_repeated_vmf_samples():
    mean = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    n, repeats = 300, 200
    samples = sample_vmf(mean, 3.0, n * repeats, _generator(2)).reshape(repeats, n, 3)
    values = _batched_uniformity(samples)
    estimates = [uniformity_with_std_error(s).std_error for s in samples[:10]]
    assert float(np.mean(estimates)) == pytest.approx(float(values.std()), rel=0.3)


def test_sweep_rows_cover_the_grid():
    rows = vmf_uniformity_sweep(
        [2, 8], [0.0, 10.0], num_samples=256, generator=_generator()
    )
    assert [(row.dim, row.kappa) for row in rows] == [
        (2, 0.0),
        (2, 10.0),
        (8, 0.0),
        (8, 10.0),
    ]
    for row in rows:
        assert row.population >= row.optimum - 1e-12
        assert row.num_samples == 256


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: vmf_population_uniformity(1, 1.0), "dim"),
        (lambda: vmf_population_uniformity(3, -1.0), "kappa"),
        (lambda: vmf_population_uniformity(3, 1.0, t=0.0), "t must"),
        (lambda: uniform_sample_std_error(3, 1), "num_samples"),
        (lambda: uniformity_with_std_error(torch.eye(2)), "at least 3 rows"),
    ],
)
def test_invalid_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
