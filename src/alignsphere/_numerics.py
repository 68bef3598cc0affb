"""Numeric building blocks shared by the losses and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def autocast_disabled(x: torch.Tensor) -> Iterator[None]:
    """Run the enclosed code outside autocast, so float32 stays float32 inside.

    Entering ``torch.autocast`` costs tens of milliseconds on a CUDA build of
    torch without a GPU (it probes the driver), so the context is entered only
    when autocast is on for the tensor's device.
    """
    if not torch.is_autocast_enabled(x.device.type):
        yield
        return
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Return squared Euclidean distances ``||x_i - y_j||^2`` without square roots.

    Computed as ``|x_i|^2 + |y_j|^2 - 2 x_i.y_j`` from one matrix product and
    clamped at 0, because cancellation can leave tiny negative values for
    identical rows. No square root is taken, so the gradient stays finite at
    zero distance.

    Args:
        x: ``(N, d)``.
        y: ``(M, d)``; ``x`` itself when omitted.

    Returns:
        ``(N, M)`` tensor.
    """
    x_sq = x.pow(2).sum(dim=1)
    if y is None:
        gram = x @ x.T
        y_sq = x_sq
    else:
        gram = x @ y.T
        y_sq = y.pow(2).sum(dim=1)
    return (x_sq[:, None] + y_sq[None, :] - 2 * gram).clamp_min(0)


def safe_pow_half(sq: torch.Tensor, alpha: float) -> torch.Tensor:
    """Return ``sq ** (alpha / 2)``, that is ``||v||^alpha`` from ``sq = ||v||^2``.

    For ``alpha < 2`` the norm is not differentiable at 0. Entries at (or within
    the smallest normal float of) zero return 0 with the subgradient 0 instead of
    the NaN that ``0 * inf`` gives in the chain rule.
    """
    if alpha == 2:
        return sq
    tiny = torch.finfo(sq.dtype).tiny
    nonzero = sq > tiny
    safe = torch.where(nonzero, sq, torch.ones_like(sq))
    return torch.where(nonzero, safe.pow(alpha / 2), torch.zeros_like(sq))
