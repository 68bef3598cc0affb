"""Bessel-function closed forms against SciPy, elementary cases and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from alignsphere.metrics import log_bessel_iv as scalar_log_bessel_iv
from alignsphere.metrics import uniformity_optimum
from alignsphere.theory.special import (
    log_bessel_iv,
    log_bessel_series,
    log_mean_exp_dot_uniform,
    vmf_log_normalizer,
    vmf_mean_resultant_length,
)

ORDERS = [0.0, 0.5, 1.0, 7.0, 15.0, 63.0]
ARGUMENTS = [1e-6, 1e-3, 0.5, 3.0, 40.0, 700.0, 5000.0]


@pytest.mark.parametrize("order", ORDERS)
def test_log_bessel_iv_matches_scipy(order):
    z = torch.tensor(ARGUMENTS, dtype=torch.float64)
    got = log_bessel_iv(order, z)
    for value, argument in zip(got.tolist(), ARGUMENTS, strict=True):
        scaled = special.ive(order, argument)
        if scaled == 0:  # underflow in SciPy; use the float64 scalar series
            reference = scalar_log_bessel_iv(order, argument)
        else:
            reference = math.log(scaled) + argument
        assert value == pytest.approx(reference, rel=1e-12, abs=1e-12)


def test_log_bessel_iv_large_order_small_argument():
    # I_500(1e-3) = 1e-2500 or so: far below the float64 range.
    got = float(log_bessel_iv(500.0, 1e-3))
    assert got == pytest.approx(scalar_log_bessel_iv(500.0, 1e-3), rel=1e-13)
    assert math.isfinite(got)


def test_log_bessel_series_at_zero():
    got = log_bessel_series(3.0, torch.tensor([0.0, 1e-300]))
    assert got.tolist() == pytest.approx([-math.lgamma(4.0)] * 2, abs=1e-15)


def test_log_bessel_series_keeps_shape():
    z = torch.rand(3, 4, dtype=torch.float64) * 10
    assert log_bessel_series(1.5, z).shape == (3, 4)


@pytest.mark.parametrize(
    ("order", "z"), [(-1.0, 1.0), (0.5, -1.0), (0.5, math.nan), (0.5, math.inf)]
)
def test_log_bessel_series_rejects_invalid_input(order, z):
    with pytest.raises(ValueError):
        log_bessel_series(order, z)


def test_log_bessel_iv_rejects_zero():
    with pytest.raises(ValueError, match="z must be > 0"):
        log_bessel_iv(1.0, 0.0)


def test_mean_exp_dot_uniform_on_two_sphere():
    # On S^2, E_u e^{u.v} = sinh(r) / r.
    r = torch.tensor([1e-8, 0.1, 2.0, 30.0, 600.0], dtype=torch.float64)
    expected = [math.log(math.sinh(x) / x) for x in r.tolist()]
    got = log_mean_exp_dot_uniform(r, 3).tolist()
    for value, reference in zip(got, expected, strict=True):
        assert value == pytest.approx(reference, rel=1e-12, abs=1e-14)


def test_mean_exp_dot_uniform_is_zero_at_origin():
    assert float(log_mean_exp_dot_uniform(0.0, 17)) == 0.0


@pytest.mark.parametrize("dim", [2, 3, 16, 128, 384, 768])
@pytest.mark.parametrize("t", [0.5, 2.0, 10.0])
def test_uniformity_optimum_from_mean_exp_dot(dim, t):
    # E e^{-t|u-v|^2} = e^{-2t} E e^{2t u.v}.
    got = -2 * t + float(log_mean_exp_dot_uniform(2 * t, dim))
    assert got == pytest.approx(uniformity_optimum(dim, t), rel=1e-12)


@pytest.mark.parametrize(("dim", "tau"), [(3, 0.5), (16, 0.2), (64, 0.1)])
def test_theorem1_inner_expectation_closed_form(dim, tau):
    # E_u e^{u.v/tau} = Gamma(d/2) (2 tau)^{d/2-1} I_{d/2-1}(1/tau) for unit v.
    nu = dim / 2 - 1
    reference = (
        math.lgamma(dim / 2)
        + nu * math.log(2 * tau)
        + math.log(special.ive(nu, 1 / tau))
        + 1 / tau
    )
    assert float(log_mean_exp_dot_uniform(1 / tau, dim)) == pytest.approx(
        reference, rel=1e-12
    )


def test_theorem1_inner_expectation_matches_monte_carlo():
    dim, tau, n = 8, 0.5, 1 << 20
    generator = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(
        torch.randn(n, dim, dtype=torch.float64, generator=generator), dim=1
    )
    values = torch.exp(u[:, 0] / tau)
    mean = float(values.mean())
    std_error = float(values.std()) / math.sqrt(n)
    closed = math.exp(float(log_mean_exp_dot_uniform(1 / tau, dim)))
    assert abs(mean - closed) < 4 * std_error


def test_vmf_normalizer_at_zero_is_inverse_area():
    for dim in (2, 3, 10):
        area = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
        assert float(vmf_log_normalizer(dim, 0.0)) == pytest.approx(-math.log(area))


def test_vmf_normalizer_on_two_sphere():
    # C_3(k) = k / (4 pi sinh k).
    for kappa in (0.1, 1.0, 25.0):
        expected = math.log(kappa / (4 * math.pi * math.sinh(kappa)))
        assert float(vmf_log_normalizer(3, kappa)) == pytest.approx(expected)


def test_vmf_density_on_circle_integrates_to_one():
    kappa = 7.5
    theta = np.linspace(-math.pi, math.pi, 200_001)
    density = np.exp(float(vmf_log_normalizer(2, kappa)) + kappa * np.cos(theta))
    assert np.trapezoid(density, theta) == pytest.approx(1.0, rel=1e-9)


def test_mean_resultant_length_on_two_sphere():
    kappa = torch.tensor([1e-3, 0.5, 3.0, 50.0, 800.0], dtype=torch.float64)
    expected = [1 / math.tanh(k) - 1 / k for k in kappa.tolist()]
    got = vmf_mean_resultant_length(3, kappa).tolist()
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_mean_resultant_length_is_zero_without_concentration():
    assert float(vmf_mean_resultant_length(5, 0.0)) == 0.0


@pytest.mark.parametrize("dim", [1, 0, 2.5, True])
def test_dimension_must_be_integer_of_at_least_two(dim):
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        log_mean_exp_dot_uniform(1.0, dim)
