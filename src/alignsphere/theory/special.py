r"""Bessel-function closed forms on the sphere, vectorised and in log space.

Everything here rests on one series. With :math:`\nu = d/2 - 1`,

.. math:: S_\nu(z) = \sum_{k \ge 0} \frac{(z/2)^{2k}}{k!\,\Gamma(k + \nu + 1)}
    = (z/2)^{-\nu} I_\nu(z),

which is finite and positive at every z >= 0, including z = 0 where
:math:`S_\nu(0) = 1/\Gamma(\nu + 1)`. In terms of it, for u uniform on
:math:`S^{d-1}` and any vector v,

.. math:: \mathbb{E}_u\, e^{u \cdot v} = \Gamma(d/2)\, S_\nu(\lVert v \rVert),

and the von Mises-Fisher density :math:`C_d(\kappa) e^{\kappa \mu \cdot x}` has
:math:`\log C_d(\kappa) = \nu \log 2 - (d/2) \log 2\pi - \log S_\nu(\kappa)`.
Working with S instead of I avoids the ``0 * log 0`` of the factor
:math:`(z/2)^\nu` at z = 0 and keeps every value finite in float64 for any d.
"""

from __future__ import annotations

import math

import torch

# The series is summed to 12 sqrt(k* + 1) + 24 terms past its largest term k*;
# see log_bessel_series.
_TAIL_SIGMAS = 12.0
_TAIL_MARGIN = 24
# Rescale the running sum in log space once it may exceed this value, well
# below the float64 maximum of 1.8e308.
_RESCALE_ABOVE = 1e250


def _as_float64(z: torch.Tensor | float) -> torch.Tensor:
    return torch.as_tensor(z, dtype=torch.float64)


def log_bessel_series(order: float, z: torch.Tensor | float) -> torch.Tensor:
    r"""Return :math:`\log S_\nu(z) = \log\big((z/2)^{-\nu} I_\nu(z)\big)` elementwise.

    The series is summed in nested (Horner) form from its last term down,
    :math:`\Gamma(\nu+1) S = 1 + q_0(1 + q_1(1 + \dots))` with
    :math:`q_k = (z/2)^2 / ((k+1)(k+\nu+1))`, which costs two vector operations
    per term and no exponentials; the partial sum is rescaled in log space
    before it overflows. Term k is largest near
    :math:`k^* = (\sqrt{\nu^2 + z^2} - \nu - 2)/2`, and over the m terms after
    it the terms fall by a factor of at least :math:`e^{m^2/(4(k^*+1))}` (for
    :math:`m \le k^*+1`). Summing to :math:`12\sqrt{k^*+1} + 24` terms past the
    peak of the largest z therefore leaves out less than about 1e-14 of every
    sum. The cost grows linearly with the largest z.

    Args:
        order: :math:`\nu > -1`.
        z: Non-negative values, any shape.

    Returns:
        float64 tensor of the shape of ``z``.

    Raises:
        ValueError: If ``order <= -1`` or any z is negative or not finite.

    Example:
        >>> round(float(log_bessel_series(0.5, 1.0)), 10)  # log(2 sinh(1) / sqrt(pi))
        0.2822215992
    """
    if not order > -1:
        raise ValueError(f"order must be > -1, got {order!r}")
    z = _as_float64(z)
    if not bool(torch.isfinite(z).all()) or bool((z < 0).any()):
        raise ValueError("z must be finite and >= 0 everywhere")
    if z.numel() == 0:
        return z.clone()
    half_sq = (z / 2).square()
    z_max = float(z.max())
    peak = max(0.0, (math.sqrt(order**2 + z_max**2) - order - 2) / 2)
    num_terms = int(math.ceil(peak + _TAIL_SIGMAS * math.sqrt(peak + 1))) + _TAIL_MARGIN
    # The sum is mantissa * exp(log_scale). bound is an upper bound of the
    # mantissa, so that its actual maximum is read only when it may overflow.
    mantissa = torch.ones_like(half_sq)
    one = torch.ones_like(half_sq)
    log_scale = torch.zeros_like(half_sq)
    bound = 1.0
    for k in range(num_terms - 1, -1, -1):
        step = 1.0 / ((k + 1) * (k + order + 1))
        mantissa = torch.addcmul(one, half_sq, mantissa, value=step)
        bound = 1.0 + step * (z_max / 2) ** 2 * bound
        if bound > _RESCALE_ABOVE:
            bound = float(mantissa.max())
            if bound > _RESCALE_ABOVE:
                factor = mantissa.log()
                log_scale += factor
                one = torch.exp(-log_scale)
                mantissa = torch.ones_like(mantissa)
                bound = 1.0
    return mantissa.log() + log_scale - math.lgamma(order + 1)


def log_bessel_iv(order: float, z: torch.Tensor | float) -> torch.Tensor:
    r"""Return :math:`\log I_\nu(z)` elementwise, for tensors of z > 0.

    A vectorised counterpart of :func:`alignsphere.metrics.log_bessel_iv`,
    built on :func:`log_bessel_series`.

    Args:
        order: :math:`\nu > -1`.
        z: Positive values, any shape.

    Returns:
        float64 tensor of the shape of ``z``.
    """
    z = _as_float64(z)
    if bool((z <= 0).any()):
        raise ValueError("z must be > 0 everywhere; log I_nu(0) is -inf for nu > 0")
    return order * (z / 2).log() + log_bessel_series(order, z)


def log_mean_exp_dot_uniform(norm: torch.Tensor | float, dim: int) -> torch.Tensor:
    r"""Return :math:`\log \mathbb{E}_u\, e^{u \cdot v}` for u uniform on :math:`S^{d-1}`.

    It depends on v only through :math:`r = \lVert v \rVert`:

    .. math:: \mathbb{E}_u\, e^{u \cdot v} = \Gamma(d/2)\, (2/r)^{d/2-1} I_{d/2-1}(r).

    With :math:`r = 1/\tau` this is the inner expectation of Theorem 1's
    uniformity term, :math:`\Gamma(d/2)(2\tau)^{d/2-1} I_{d/2-1}(1/\tau)`, and with
    :math:`r = 2t` times :math:`e^{-2t}` it is the population uniformity optimum.

    Args:
        norm: :math:`r = \lVert v \rVert \ge 0`, any shape.
        dim: Ambient dimension d >= 2.

    Returns:
        float64 tensor of the shape of ``norm``; 0 where r = 0.

    Example:
        >>> round(float(log_mean_exp_dot_uniform(2.0, 3)), 10)  # log(sinh(2) / 2)
        0.5952201921
    """
    _check_dim(dim)
    return math.lgamma(dim / 2) + log_bessel_series(dim / 2 - 1, norm)


def vmf_log_normalizer(dim: int, kappa: torch.Tensor | float) -> torch.Tensor:
    r"""Return :math:`\log C_d(\kappa)`, the log normaliser of the von Mises-Fisher density.

    The density on :math:`S^{d-1}`, with respect to surface measure, is
    :math:`C_d(\kappa)\, e^{\kappa \mu \cdot x}` with
    :math:`C_d(\kappa) = \kappa^{d/2-1} / ((2\pi)^{d/2} I_{d/2-1}(\kappa))`.
    At :math:`\kappa = 0` it is minus the log area of the sphere.

    Args:
        dim: Ambient dimension d >= 2.
        kappa: Concentrations >= 0, any shape.

    Returns:
        float64 tensor of the shape of ``kappa``.
    """
    _check_dim(dim)
    nu = dim / 2 - 1
    return (
        nu * math.log(2)
        - dim / 2 * math.log(2 * math.pi)
        - log_bessel_series(nu, kappa)
    )


def vmf_mean_resultant_length(dim: int, kappa: torch.Tensor | float) -> torch.Tensor:
    r"""Return :math:`A_d(\kappa) = I_{d/2}(\kappa) / I_{d/2-1}(\kappa) = \mathbb{E}[\mu \cdot x]`.

    The mean cosine between a von Mises-Fisher sample and its mean direction.

    Args:
        dim: Ambient dimension d >= 2.
        kappa: Concentrations >= 0, any shape.

    Returns:
        float64 tensor of the shape of ``kappa``, in [0, 1).

    Example:
        >>> k = 3.0  # on S^2, A_3(k) = coth(k) - 1/k
        >>> round(float(vmf_mean_resultant_length(3, k)), 8)
        0.67163649
    """
    _check_dim(dim)
    kappa = _as_float64(kappa)
    nu = dim / 2 - 1
    log_ratio = log_bessel_series(nu + 1, kappa) - log_bessel_series(nu, kappa)
    return kappa / 2 * log_ratio.exp()


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or int(dim) != dim or dim < 2:
        raise ValueError(
            f"dim must be an integer >= 2 (the sphere S^(dim-1) in R^dim), got {dim!r}"
        )
