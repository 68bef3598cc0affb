r"""Kernel density estimates for features on the circle :math:`S^1`.

Two views of the same 2-D unit features: a Gaussian kernel density on the
plane, which shows the ring they lie on, and a von Mises-Fisher kernel density
of their angles, the natural density on the circle.
"""

from __future__ import annotations

import math

import torch

# Grid points times angles per chunk of the angle density (float64 cells).
_CHUNK_CELLS = 1 << 22


def gaussian_kde_2d(
    points: torch.Tensor,
    grid_x: torch.Tensor,
    grid_y: torch.Tensor,
    bandwidth: float,
) -> torch.Tensor:
    r"""Gaussian kernel density of 2-D points on a rectangular grid.

    .. math:: \hat p(g) = \frac{1}{N} \sum_i \frac{1}{2\pi h^2}
        e^{-\lVert g - x_i \rVert^2 / (2h^2)}

    The density integrates to 1 over the whole plane. On a grid that covers the
    points with a margin of a few h, its Riemann sum is 1 to within the mass
    outside the grid.

    Args:
        points: ``(N, 2)`` points, N >= 1.
        grid_x: ``(W,)`` x coordinates of the grid columns.
        grid_y: ``(H,)`` y coordinates of the grid rows.
        bandwidth: Kernel standard deviation h > 0, in the units of the points.

    Returns:
        ``(H, W)`` float64 density, row i at ``grid_y[i]``.

    Example:
        >>> axis = torch.linspace(-4, 4, 161)
        >>> density = gaussian_kde_2d(torch.zeros(1, 2), axis, axis, 1.0)
        >>> round(float(density.sum() * 0.05**2), 4)
        0.9999
    """
    points = _check_points(points, 2)
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be finite and > 0, got {bandwidth!r}")
    # The kernel factorises over the two axes, so the grid of sums is one
    # product of a (H, N) and an (N, W) matrix of 1-D kernels.
    scale = 2 * bandwidth**2
    kernel_y = torch.exp(
        -(grid_y.double()[:, None] - points[None, :, 1]).square() / scale
    )
    kernel_x = torch.exp(
        -(points[:, 0, None] - grid_x.double()[None, :]).square() / scale
    )
    density = kernel_y @ kernel_x
    return density / (points.shape[0] * math.pi * scale)


def vmf_kde_angles(
    angles: torch.Tensor, grid: torch.Tensor, kappa: float
) -> torch.Tensor:
    r"""von Mises-Fisher (von Mises) kernel density of angles on the circle.

    .. math:: \hat p(\theta) = \frac{1}{N} \sum_i
        \frac{e^{\kappa \cos(\theta - \theta_i)}}{2\pi I_0(\kappa)}

    computed as :math:`e^{\kappa(\cos(\theta-\theta_i) - 1)} / (2\pi\,
    I_0(\kappa) e^{-\kappa})` with the exponentially scaled Bessel function, so
    large :math:`\kappa` does not overflow. The density is per radian and
    integrates to 1 over any interval of length :math:`2\pi`. A kernel of
    concentration :math:`\kappa` has an angular standard deviation of about
    :math:`1/\sqrt\kappa` radians.

    Args:
        angles: ``(N,)`` angles in radians, N >= 1.
        grid: ``(G,)`` angles at which to evaluate.
        kappa: Concentration > 0.

    Returns:
        ``(G,)`` float64 density per radian.

    Example:
        >>> grid = torch.linspace(-math.pi, math.pi, 2001)[:-1]
        >>> density = vmf_kde_angles(torch.tensor([0.5, 2.0]), grid, 20.0)
        >>> round(float(density.sum() * 2 * math.pi / 2000), 6)
        1.0
    """
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles.numel() == 0:
        raise ValueError("angles is empty; the density needs at least one angle")
    if not bool(torch.isfinite(angles).all()):
        raise ValueError("angles contain NaN or infinite values")
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be finite and > 0, got {kappa!r}")
    grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    log_norm = math.log(2 * math.pi) + math.log(
        float(torch.special.i0e(torch.tensor(float(kappa), dtype=torch.float64)))
    )
    density = torch.zeros_like(grid)
    chunk = max(1, _CHUNK_CELLS // max(1, grid.numel()))
    for start in range(0, angles.numel(), chunk):
        block = angles[start : start + chunk]
        cosine = torch.cos(grid[:, None] - block[None, :])
        density += torch.exp(kappa * (cosine - 1) - log_norm).sum(dim=1)
    return density / angles.numel()


def _check_points(points: torch.Tensor, dim: int) -> torch.Tensor:
    points = torch.as_tensor(points).double()
    if points.dim() != 2 or points.shape[1] != dim or points.shape[0] < 1:
        raise ValueError(
            f"points must have shape (N, {dim}) with N >= 1, got {tuple(points.shape)}"
        )
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points contain NaN or infinite values")
    return points
