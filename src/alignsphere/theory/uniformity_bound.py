r"""The uniformity bound: the uniform distribution on the sphere scores lowest.

Among all distributions of unit vectors in R^d, the uniform distribution on
:math:`S^{d-1}` minimises the population uniformity
:math:`\log \mathbb{E}\, e^{-t \lVert u - v \rVert^2}`; its value is
:func:`alignsphere.metrics.uniformity_optimum`. This module checks the bound
from both sides:

- samples of the uniform distribution land on the closed form, within a
  standard error that is also in closed form (:func:`check_uniform_samples`);
- von Mises-Fisher distributions score higher the more concentrated they are,
  both in population (:func:`vmf_population_uniformity`, by one-dimensional
  quadrature) and in samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alignsphere.metrics import uniformity, uniformity_optimum
from alignsphere.theory.distributions import UniformSphere, sample_vmf
from alignsphere.theory.special import _check_dim, log_bessel_series

# Quadrature nodes on the part of [0, pi] that carries the mass, and how far
# below its peak (in nats) the log-density may fall before a point is left out.
_QUADRATURE_NODES = 256
_WINDOW_NATS = 80.0
_WINDOW_GRID = 4096
# Rows per block of the kernel matrix in uniformity_with_std_error.
_BLOCK_ROWS = 1024


@functools.lru_cache(maxsize=4)
def _gauss_legendre(count: int) -> tuple[np.ndarray, np.ndarray]:
    # An eigenvalue problem of size count, so worth computing once.
    return np.polynomial.legendre.leggauss(count)


def vmf_population_uniformity(dim: int, kappa: float, t: float = 2.0) -> float:
    r"""Population uniformity of the von Mises-Fisher distribution :math:`\mathrm{vMF}(\mu, \kappa)`.

    For u, v iid vMF, the inner expectation is in closed form,
    :math:`\mathbb{E}_v e^{2t\,u\cdot v} = S_\nu(\lVert\kappa\mu + 2tu\rVert)/S_\nu(\kappa)`
    (see :mod:`alignsphere.theory.special`), and depends on u only through
    :math:`w = \mu \cdot u = \cos\theta`, whose density is proportional to
    :math:`e^{\kappa\cos\theta}\sin^{d-2}\theta` on :math:`[0, \pi]`. So

    .. math:: L_\text{uniform} = -2t + \log
        \frac{\int e^{\kappa\cos\theta}\sin^{d-2}\theta\;
        S_\nu\big(\sqrt{\kappa^2 + 4t^2 + 4\kappa t\cos\theta}\big)\,d\theta}
        {\int e^{\kappa\cos\theta}\sin^{d-2}\theta\,d\theta} - \log S_\nu(\kappa),

    with both integrals by Gauss-Legendre quadrature over the interval where
    the log-density is within 80 nats of its peak. At :math:`\kappa = 0` this is
    exactly :func:`~alignsphere.metrics.uniformity_optimum`; as
    :math:`\kappa \to \infty` it rises to 0.

    Args:
        dim: Ambient dimension d >= 2.
        kappa: Concentration >= 0.
        t: Scale > 0. Defaults to 2.

    Returns:
        The population uniformity.

    Example:
        >>> from alignsphere.metrics import uniformity_optimum
        >>> abs(vmf_population_uniformity(3, 0.0) - uniformity_optimum(3)) < 1e-12
        True
    """
    _check_dim(dim)
    if not (kappa >= 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be finite and >= 0, got {kappa!r}")
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t must be finite and > 0, got {t!r}")
    nu = dim / 2 - 1

    def log_density(theta: np.ndarray) -> np.ndarray:
        values = kappa * np.cos(theta)
        if dim > 2:
            with np.errstate(divide="ignore"):
                values = values + (dim - 2) * np.log(np.sin(theta))
        return values

    grid = (np.arange(_WINDOW_GRID) + 0.5) * math.pi / _WINDOW_GRID
    inside = np.nonzero(log_density(grid) > log_density(grid).max() - _WINDOW_NATS)[0]
    step = math.pi / _WINDOW_GRID
    low = max(0.0, grid[inside[0]] - step)
    high = min(math.pi, grid[inside[-1]] + step)

    nodes, weights = _gauss_legendre(_QUADRATURE_NODES)
    theta = low + (high - low) * (nodes + 1) / 2
    log_weights = np.log(weights * (high - low) / 2) + log_density(theta)
    radius = np.sqrt(
        np.maximum(kappa**2 + 4 * t**2 + 4 * kappa * t * np.cos(theta), 0.0)
    )
    log_series = log_bessel_series(nu, torch.from_numpy(radius)).numpy()
    log_numerator = _logsumexp(log_weights + log_series)
    log_denominator = _logsumexp(log_weights)
    return float(
        -2 * t
        + log_numerator
        - log_denominator
        - float(log_bessel_series(nu, float(kappa)))
    )


def _logsumexp(values: np.ndarray) -> float:
    peak = float(values.max())
    return peak + math.log(float(np.exp(values - peak).sum()))


@dataclass(frozen=True)
class UniformityWithError:
    """A uniformity value of a sample and its standard error.

    Attributes:
        value: ``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over pairs i < j.
        std_error: Standard error of ``value`` as an estimate of the population
            uniformity of the distribution the rows were drawn from.
        num_rows: Rows in the sample.
    """

    value: float
    std_error: float
    num_rows: int


@torch.no_grad()
def uniformity_with_std_error(x: torch.Tensor, t: float = 2.0) -> UniformityWithError:
    r"""Exact uniformity of a sample, with its standard error from U-statistic theory.

    The mean U of the kernel :math:`k(x, y) = e^{-t\lVert x-y \rVert^2}` over all
    pairs is a U-statistic, with variance
    :math:`(4(n-2)\zeta_1 + 2\zeta_2)/(n(n-1))`, where
    :math:`\zeta_1 = \mathrm{Var}\,\mathbb{E}[k(x, y) \mid x]` and
    :math:`\zeta_2 = \mathrm{Var}\,k(x, y)` are estimated from the kernel
    matrix (in row blocks of 1024). The standard error of log U is that of U divided
    by U (delta method).

    Args:
        x: ``(n, d)`` unit rows, n >= 3.
        t: Scale > 0. Defaults to 2.

    Returns:
        A :class:`UniformityWithError`.
    """
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"x needs at least 3 rows for a standard error, got {n}")
    value = uniformity(x, t, normalize=True)
    rows = torch.nn.functional.normalize(x.double(), dim=1)
    row_means = torch.empty(n, dtype=torch.float64)
    square_sum = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        block = rows[start : start + _BLOCK_ROWS]
        kernel = torch.exp(2 * t * (block @ rows.T - 1))
        index = torch.arange(block.shape[0])
        kernel[index, start + index] = 0.0
        row_means[start : start + block.shape[0]] = kernel.sum(dim=1) / (n - 1)
        square_sum += float(kernel.square().sum())
    mean = float(row_means.mean())
    zeta2 = max(0.0, square_sum / (n * (n - 1)) - mean**2)
    # A row mean over n - 1 partners adds about (zeta2 - zeta1) / (n - 1) of
    # noise to the spread of E[k | x] across rows; remove it.
    spread = float(row_means.var())
    zeta1 = max(0.0, (spread - zeta2 / (n - 1)) * (n - 1) / (n - 2))
    variance = (4 * (n - 2) * zeta1 + 2 * zeta2) / (n * (n - 1))
    return UniformityWithError(
        value=value, std_error=math.sqrt(variance) / mean, num_rows=n
    )


@dataclass(frozen=True)
class UniformSampleCheck:
    """Uniformity of a sample of the uniform distribution against the closed form.

    Attributes:
        dim: Ambient dimension d.
        num_samples: Sample size n.
        t: Scale of the uniformity.
        value: Exact uniformity of the sample.
        optimum: :func:`~alignsphere.metrics.uniformity_optimum` of (d, t).
        std_error: Closed-form standard error of ``value``.
        z_score: ``(value - optimum) / std_error``. It is not close to standard
            normal: with zeta_1 = 0 the U-statistic is degenerate, a weighted
            sum of centred chi-squares, skewed to the right. The skew is
            largest for small d: on the circle at t = 2, the largest
            eigenvalue pair carries about two thirds of the variance.
    """

    dim: int
    num_samples: int
    t: float
    value: float
    optimum: float
    std_error: float
    z_score: float


def uniform_sample_std_error(dim: int, num_samples: int, t: float = 2.0) -> float:
    r"""Standard error of the uniformity of n uniform samples on :math:`S^{d-1}`, in closed form.

    For the uniform distribution, :math:`\mathbb{E}[k(x, y) \mid x]` is the same
    for every x by rotation invariance, so :math:`\zeta_1 = 0` and the
    U-statistic variance is :math:`2\zeta_2/(n(n-1))` with
    :math:`\zeta_2 = \mathbb{E}k^2 - (\mathbb{E}k)^2 = e^{U^*(2t)} - e^{2U^*(t)}`,
    where :math:`U^*` is :func:`~alignsphere.metrics.uniformity_optimum`. The error
    shrinks as 1/n rather than :math:`1/\sqrt{n}`.

    Args:
        dim: Ambient dimension d >= 2.
        num_samples: n >= 2.
        t: Scale > 0. Defaults to 2.
    """
    _check_dim(dim)
    n = int(num_samples)
    if n < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples!r}")
    optimum = uniformity_optimum(dim, t)
    zeta2 = math.exp(uniformity_optimum(dim, 2 * t)) - math.exp(2 * optimum)
    return math.sqrt(2 * max(zeta2, 0.0) / (n * (n - 1))) / math.exp(optimum)


def check_uniform_samples(
    dim: int,
    num_samples: int,
    t: float = 2.0,
    generator: torch.Generator | None = None,
) -> UniformSampleCheck:
    """Draw uniform samples on the sphere and compare their uniformity with the optimum.

    Args:
        dim: Ambient dimension d >= 2.
        num_samples: Sample size n >= 2.
        t: Scale > 0. Defaults to 2.
        generator: CPU random generator.

    Returns:
        A :class:`UniformSampleCheck`.
    """
    x = UniformSphere(dim).sample(num_samples, generator)
    value = uniformity(x, t)
    optimum = uniformity_optimum(dim, t)
    std_error = uniform_sample_std_error(dim, num_samples, t)
    return UniformSampleCheck(
        dim=int(dim),
        num_samples=int(num_samples),
        t=float(t),
        value=value,
        optimum=optimum,
        std_error=std_error,
        z_score=(value - optimum) / std_error,
    )


@dataclass(frozen=True)
class VMFUniformityRow:
    """Uniformity of one von Mises-Fisher distribution, in population and in a sample.

    Attributes:
        dim: Ambient dimension d.
        kappa: Concentration.
        t: Scale of the uniformity.
        population: :func:`vmf_population_uniformity`.
        sample: Exact uniformity of ``num_samples`` samples.
        sample_std_error: Standard error of ``sample`` (U-statistic theory).
        optimum: The uniform distribution's value, the lower bound.
        num_samples: Sample size.
    """

    dim: int
    kappa: float
    t: float
    population: float
    sample: float
    sample_std_error: float
    optimum: float
    num_samples: int


def vmf_uniformity_sweep(
    dims: Sequence[int],
    kappas: Sequence[float],
    *,
    num_samples: int = 2048,
    t: float = 2.0,
    generator: torch.Generator | None = None,
) -> list[VMFUniformityRow]:
    """Measure the uniformity of vMF distributions over a grid of d and kappa.

    Args:
        dims: Ambient dimensions d >= 2.
        kappas: Concentrations >= 0.
        num_samples: Samples per distribution. Defaults to 2048.
        t: Scale > 0. Defaults to 2.
        generator: CPU random generator.

    Returns:
        One :class:`VMFUniformityRow` per (d, kappa), d-major.
    """
    rows = []
    for dim in dims:
        mean = torch.zeros(dim, dtype=torch.float64)
        mean[0] = 1.0
        optimum = uniformity_optimum(dim, t)
        for kappa in kappas:
            sample = sample_vmf(mean, kappa, num_samples, generator)
            measured = uniformity_with_std_error(sample, t)
            rows.append(
                VMFUniformityRow(
                    dim=int(dim),
                    kappa=float(kappa),
                    t=float(t),
                    population=vmf_population_uniformity(dim, kappa, t),
                    sample=measured.value,
                    sample_std_error=measured.std_error,
                    optimum=optimum,
                    num_samples=int(num_samples),
                )
            )
    return rows
