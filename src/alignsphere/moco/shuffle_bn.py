"""Shuffle-BN: batch-norm statistics of the key encoder that do not leak the positive.

With batch norm, a query and its key computed over the same sub-batch share
that sub-batch's mean and variance. The encoder can then lower the loss by
recognising which sub-batch a key came from, instead of learning a good
representation. MoCo's fix runs the key encoder on a random permutation of the
global batch, so that each rank normalises its keys with statistics of other
images than those its queries saw, and then restores the original order.

On one process there is no other rank to send images to. Permuting the batch
changes nothing for batch norm, whose statistics over one batch do not depend
on the order. :func:`forward_in_splits` emulates per-GPU batch norm instead: it
runs the encoder on ``splits`` sub-batches, each normalised with its own
statistics, as ``splits`` GPUs would. This module imports torch alone.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from alignsphere.distributed import gather_no_grad, gather_with_grad, is_distributed

__all__ = ["forward_in_splits", "shuffled_forward"]


def forward_in_splits(encoder: nn.Module, x: Tensor, splits: int = 1) -> Tensor:
    """Run ``encoder`` on ``splits`` consecutive sub-batches of ``x`` and concatenate.

    In training mode each sub-batch gets its own batch-norm statistics, which
    emulates ``splits`` GPUs that each hold one sub-batch. Sub-batch sizes
    differ by at most one row (:func:`torch.tensor_split`). With ``splits=1``
    this is ``encoder(x)``.

    Args:
        encoder: Any module that maps a batch to a batch of rows.
        x: ``(N, ...)`` input batch.
        splits: Number of sub-batches, at least 1 and at most N.

    Returns:
        ``(N, ...)`` outputs in the order of ``x``.

    Raises:
        ValueError: If ``splits`` is below 1 or above the batch size.
    """
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    if splits == 1:
        return encoder(x)
    if x.shape[0] < splits:
        raise ValueError(
            f"cannot split a batch of {x.shape[0]} rows into {splits} sub-batches; "
            f"lower the number of batch-norm splits or raise the batch size"
        )
    return torch.cat([encoder(chunk) for chunk in torch.tensor_split(x, splits)])


@torch.no_grad()
def shuffled_forward(
    encoder: nn.Module,
    x: Tensor,
    *,
    splits: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Encode ``x`` with shuffle-BN and return the outputs in the order of ``x``.

    Under ``torch.distributed`` with more than one rank, every rank gathers the
    global batch, rank 0 draws a permutation of it and broadcasts it, and rank r
    encodes the rows at positions ``offset_r .. offset_r + n_r`` of the permuted
    global batch, where ``n_r`` is its own batch size. The outputs are gathered,
    put back in the original global order, and each rank keeps its own rows.
    Ranks may hold different numbers of rows. On one process the permutation
    is drawn locally. In both cases the encoder runs through
    :func:`forward_in_splits`, so ``splits > 1`` also splits each rank's
    permuted rows into separately normalised sub-batches.

    Nothing here carries gradients: it is meant for the momentum key encoder.

    Args:
        encoder: The key encoder.
        x: ``(n_r, ...)`` this rank's inputs.
        splits: Batch-norm sub-batches per rank; see :func:`forward_in_splits`.
        generator: CPU generator of the permutation, used on rank 0 only; None
            draws from PyTorch's global generator.

    Returns:
        ``(n_r, ...)`` outputs, row i being the output of ``x[i]``.
    """
    if not is_distributed():
        permutation = torch.randperm(x.shape[0], generator=generator).to(x.device)
        shuffled = forward_in_splits(encoder, x[permutation], splits)
        return _unpermute(shuffled, permutation)

    gathered, offset = gather_with_grad(x)
    total, local = gathered.shape[0], x.shape[0]
    if dist.get_rank() == 0:
        permutation = torch.randperm(total, generator=generator).to(x.device)
    else:
        permutation = torch.empty(total, dtype=torch.long, device=x.device)
    dist.broadcast(permutation, src=0)
    mine = permutation[offset : offset + local]
    outputs = forward_in_splits(encoder, gathered[mine], splits)
    # Row j of the gathered outputs is the output of global row permutation[j].
    restored = _unpermute(gather_no_grad(outputs), permutation)
    return restored[offset : offset + local]


def _unpermute(shuffled: Tensor, permutation: Tensor) -> Tensor:
    restored = torch.empty_like(shuffled)
    restored[permutation] = shuffled
    return restored
