"""Gathering features across ranks with gradients that match one process.

``torch.distributed.all_gather`` returns tensors that carry no gradient, so a
loss over the gathered global batch would train each rank only through its own
rows' direct terms. :func:`gather_with_grad` fixes that: its backward sums, over
all ranks, the gradient that each rank's loss sends to a given rank's rows
(an all-reduce of the gathered gradient) and hands every rank the slice of its
own rows. With DDP averaging parameter gradients over W ranks, the update then
equals that of one process that has the whole batch and minimises the mean
of the W per-rank losses.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Return True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Return the number of ranks, 1 outside a process group."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Return this process's rank, 0 outside a process group."""
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        ctx.sizes = sizes
        ctx.rank = dist.get_rank()
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        buffers = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(buffers, padded.contiguous())
        return torch.cat([b[:n] for b, n in zip(buffers, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        # Every rank has d(its loss)/d(all rows). Summing over ranks gives
        # d(sum of losses)/d(all rows); each rank keeps its own rows.
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``x`` from all ranks along dim 0, keeping gradients.

    Ranks may hold different numbers of rows. Outside a process group this
    returns ``x`` unchanged.

    Args:
        x: Local rows, ``(n_rank, ...)``.

    Returns:
        ``(gathered, offset)``: the ``(sum of n_rank, ...)`` tensor in rank order,
        and the index of this rank's first row in it.

    Example:
        >>> z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> gathered, offset = gather_with_grad(z)  # no group: unchanged
        >>> gathered.shape, offset
        (torch.Size([4, 8]), 0)
    """
    if not is_distributed():
        return x, 0
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes_t = [torch.empty_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes_t, size)
    sizes = [int(s.item()) for s in sizes_t]
    gathered = _GatherWithGrad.apply(x, sizes)
    return gathered, sum(sizes[: dist.get_rank()])


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0, without gradients."""
    if not is_distributed():
        return x
    gathered, _ = gather_with_grad(x.detach())
    return gathered
