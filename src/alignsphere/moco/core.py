"""MoCo with alignment and uniformity: the torch-only core, without Lightning.

:class:`MoCo` contains the query encoder, its momentum copy (the key encoder), and
a queue of K past keys with a write pointer. One training step

1. moves the key encoder towards the query encoder (an exponential moving
   average with ``momentum``),
2. encodes the keys without gradients, with shuffle-BN,
3. encodes the queries,
4. evaluates the objective on the queries, the keys and a snapshot of the queue,
5. writes the keys of all ranks into the queue.

Step 5 comes after step 4, so a key is never a negative of its own query in the
step that produced it. In eval mode (``module.eval()``) steps 1 and 5 are
skipped and nothing is shuffled, so validation and evaluation leave the queue,
its pointer and the key encoder as they were.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alignsphere.distributed import gather_no_grad, gather_with_grad, is_distributed
from alignsphere.losses import Objective, ObjectiveOutput, parse_objective
from alignsphere.moco.shuffle_bn import forward_in_splits, shuffled_forward

logger = logging.getLogger(__name__)

__all__ = ["MoCo", "MoCoOutput", "has_batch_norm"]

#: Queue size of Wang & Isola's ImageNet-100 recipe.
DEFAULT_QUEUE_SIZE = 16384
#: Momentum of the key encoder in MoCo (He et al., 2020).
DEFAULT_MOMENTUM = 0.999


@dataclass
class MoCoOutput:
    """The result of one MoCo step.

    Attributes:
        total: Weighted sum of the objective's terms, the value to minimise.
        terms: Each unweighted term by name, for logging.
        queries: ``(n, d)`` this rank's unit queries, which carry gradients.
        keys: ``(n, d)`` this rank's unit keys, without gradients.
    """

    total: Tensor
    terms: dict[str, Tensor]
    queries: Tensor
    keys: Tensor

    def objective_output(self) -> ObjectiveOutput:
        """Return the loss part as an :class:`~alignsphere.losses.ObjectiveOutput`."""
        return ObjectiveOutput(self.total, self.terms)


def has_batch_norm(module: nn.Module) -> bool:
    """Return True if ``module`` contains a batch-norm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class MoCo(nn.Module):
    """Momentum key encoder and key queue around a query encoder (MoCo).

    The objective is any spec of :mod:`alignsphere.losses`; Wang & Isola's
    ImageNet-100 recipe is ``3*align(alpha=2) + 1*uniform_queue(t=3)``. The
    ``uniform_queue`` term takes the mean of ``exp(-t ||q_i - k_m||^2)`` over
    every query and queue entry, plus over the query pairs i < j of the batch
    unless ``intra_batch=false``. ``align`` compares each query with the key of
    the same image, and ``contrastive_queue`` is MoCo's InfoNCE loss.

    Under ``torch.distributed`` with ``gather=True``, the queries (with
    gradients) and keys of all ranks are gathered first and every rank
    evaluates the objective on the global batch. So every term, the
    query-to-queue part of ``uniform_queue`` included, is that of one process
    holding the global batch, and DDP's gradient average equals that process's
    gradient. With ``gather=False`` each rank evaluates the objective on its own
    queries and keys, as the reference implementations do.

    The queue starts as random unit vectors drawn with ``seed``, so the first
    K / (global batch) steps use some random negatives. Keys are written at
    the pointer and wrap around the end of the queue, for any K and any batch
    size (a batch larger than K keeps its last K keys).

    Attributes:
        encoder_q: The query encoder, trained by the optimiser.
        encoder_k: The key encoder, an exponential moving average of the query
            encoder's parameters. Its batch-norm running statistics come from
            its own forward passes and are not averaged.
        queue: ``(K, d)`` buffer of unit keys.
        queue_ptr: 0-d int64 buffer: the queue row the next key goes to.
        objective: The objective; it never gathers, because this module does.

    Args:
        encoder: Query encoder that returns ``(N, d)`` unit rows. The key encoder
            starts as a deep copy of it.
        objective: Objective spec string, list of term mappings, or
            :class:`~alignsphere.losses.Objective`.
        queue_size: Number K of keys in the queue. Defaults to 16384, the value
            of Wang & Isola's ImageNet-100 recipe.
        momentum: m in ``key = m * key + (1 - m) * query``, in [0, 1). Defaults
            to 0.999.
        shuffle_bn: Encode keys with shuffle-BN (see
            :mod:`alignsphere.moco.shuffle_bn`). Defaults to True.
        bn_splits: Sub-batches per rank that both encoders normalise separately
            in training mode; above 1 it emulates per-GPU batch norm on one
            process. Defaults to 1.
        gather: Evaluate the objective on the batch gathered from all ranks.
            Defaults to True.
        dim: Feature dimension d; defaults to ``encoder.out_dim``.
        seed: Seed of the initial queue.

    Example:
        >>> from alignsphere.models import build_encoder
        >>> encoder = build_encoder("mlp", input_dim=64, out_dim=16)
        >>> moco = MoCo(encoder, "3*align(alpha=2) + 1*uniform_queue(t=3)",
        ...             queue_size=32)
        >>> out = moco(torch.randn(8, 1, 8, 8), torch.randn(8, 1, 8, 8))
        >>> out.total.backward()
        >>> int(moco.queue_ptr)
        8
    """

    queue: Tensor
    queue_ptr: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        objective: str | Sequence[Mapping[str, Any]] | Objective,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        momentum: float = DEFAULT_MOMENTUM,
        shuffle_bn: bool = True,
        bn_splits: int = 1,
        gather: bool = True,
        dim: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(queue_size, bool) or not isinstance(queue_size, int):
            raise TypeError(f"queue_size must be an int, got {queue_size!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"momentum must be in [0, 1), got {momentum}; 0.999 is MoCo's value"
            )
        if bn_splits < 1:
            raise ValueError(f"bn_splits must be >= 1, got {bn_splits}")
        if dim is None:
            dim = getattr(encoder, "out_dim", None)
            if not isinstance(dim, int):
                raise ValueError(
                    f"{type(encoder).__name__} has no integer out_dim attribute; "
                    "pass the feature dimension as dim="
                )
        self.momentum = float(momentum)
        self.shuffle_bn = shuffle_bn
        self.bn_splits = bn_splits
        self.gather = gather
        self.objective = _non_gathering(objective)

        self.encoder_q = encoder
        self.encoder_k = copy.deepcopy(encoder)
        self.encoder_k.requires_grad_(False)

        generator = torch.Generator().manual_seed(seed)
        initial = F.normalize(torch.randn(queue_size, dim, generator=generator), dim=1)
        self.register_buffer("queue", initial)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def queue_size(self) -> int:
        """Number K of keys in the queue."""
        return self.queue.shape[0]

    def extra_repr(self) -> str:
        return (
            f"queue_size={self.queue_size}, momentum={self.momentum}, "
            f"shuffle_bn={self.shuffle_bn}, bn_splits={self.bn_splits}, "
            f"gather={self.gather}"
        )

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move every key-encoder parameter towards its query-encoder parameter."""
        weight = 1.0 - self.momentum
        pairs = zip(
            self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True
        )
        for query_param, key_param in pairs:
            key_param.lerp_(query_param.detach(), weight)

    @torch.no_grad()
    def encode_keys(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Encode keys with the key encoder, without gradients.

        In training mode with ``shuffle_bn`` the batch goes through
        :func:`~alignsphere.moco.shuffle_bn.shuffled_forward`; otherwise it is
        encoded in order, in ``bn_splits`` sub-batches in training mode.
        Under ``torch.distributed`` every rank must call this together.
        """
        if not self.training:
            return self.encoder_k(x)
        if self.shuffle_bn:
            return shuffled_forward(
                self.encoder_k, x, splits=self.bn_splits, generator=generator
            )
        return forward_in_splits(self.encoder_k, x, self.bn_splits)

    def encode_queries(self, x: Tensor) -> Tensor:
        """Encode queries with the query encoder, in ``bn_splits`` sub-batches."""
        if not self.training:
            return self.encoder_q(x)
        return forward_in_splits(self.encoder_q, x, self.bn_splits)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write this rank's keys, gathered with those of all ranks, into the queue.

        Under ``torch.distributed`` every rank must call this together, so that
        every rank writes the same keys in rank order and the queues stay equal.
        """
        self._write(gather_no_grad(keys))

    @torch.no_grad()
    def _write(self, keys: Tensor) -> None:
        count = keys.shape[0]
        if count == 0:
            return
        size = self.queue_size
        # Rows are renormalised in float32 so that keys computed under
        # bf16 autocast still pass the unit-norm check of the losses.
        keys = F.normalize(keys.detach().float(), dim=1).to(self.queue.dtype)
        # Of a batch longer than the queue, only the last K keys would survive.
        skipped = max(count - size, 0)
        keys = keys[skipped:]
        steps = torch.arange(keys.shape[0], device=self.queue.device)
        rows = (self.queue_ptr + skipped + steps) % size
        self.queue.index_copy_(0, rows, keys)
        self.queue_ptr.add_(count).remainder_(size)

    def forward(
        self,
        x_q: Tensor,
        x_k: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> MoCoOutput:
        """Run one MoCo step on two views of the same images.

        In training mode this updates the key encoder before encoding and the
        queue after the objective is evaluated; in eval mode it changes nothing.

        Args:
            x_q: ``(n, ...)`` this rank's query views.
            x_k: ``(n, ...)`` key views of the same images, in the same order.
            generator: CPU generator of the shuffle-BN permutation (rank 0 only).

        Returns:
            A :class:`MoCoOutput`; call ``total.backward()`` on it.

        Raises:
            ValueError: If the two views hold different numbers of images.
        """
        if x_q.shape[0] != x_k.shape[0]:
            raise ValueError(
                f"x_q has {x_q.shape[0]} images but x_k has {x_k.shape[0]}; the "
                "two views must come from the same images"
            )
        if self.training:
            self.momentum_update()
        keys = self.encode_keys(x_k, generator)
        queries = self.encode_queries(x_q)
        # A copy, because the in-place write below would otherwise change a
        # tensor that autograd saved for the backward pass.
        negatives = self.queue.clone()
        if self.gather and is_distributed():
            all_queries, _ = gather_with_grad(queries)
            all_keys = gather_no_grad(keys)
        else:
            all_queries, all_keys = queries, keys
        output = self.objective(all_queries, all_keys, negatives)
        if self.training:
            if self.gather and is_distributed():
                self._write(all_keys)
            else:
                self.enqueue(keys)
        return MoCoOutput(output.total, output.terms, queries, keys)


def _non_gathering(
    objective: str | Sequence[Mapping[str, Any]] | Objective,
) -> Objective:
    """Return the objective with ``gather=False``; :class:`MoCo` gathers itself."""
    parsed = parse_objective(objective, gather=False)
    if parsed.gather:
        parsed = Objective(list(parsed.terms), gather=False)
    return parsed
