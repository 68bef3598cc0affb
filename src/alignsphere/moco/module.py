"""The Lightning module of ``method: moco``: :class:`MoCo` inside the trainer."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from alignsphere.losses import ObjectiveOutput
from alignsphere.moco.core import MoCo, has_batch_norm
from alignsphere.training.config import TrainConfig
from alignsphere.training.module import HypersphereModule

logger = logging.getLogger(__name__)

__all__ = ["MoCoModule", "shuffle_generator"]


def shuffle_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """Return the CPU generator of one step's shuffle-BN permutation.

    Seeded from ``(seed, epoch, step)`` in a stream of its own (a separate
    ``spawn_key`` of ``numpy.random.SeedSequence``), apart from the views'
    generator, so that a resumed run draws the same permutations.
    """
    sequence = np.random.SeedSequence([seed, epoch, step], spawn_key=(1,))
    state = sequence.generate_state(2)
    value = (int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1)
    return torch.Generator().manual_seed(value)


class MoCoModule(HypersphereModule):
    """Train an encoder with MoCo: a momentum key encoder and a queue of keys.

    The first view of each image is the query and the second the key. The
    objective comes from ``config.objective`` and the MoCo settings from
    ``config.moco`` (queue size, momentum, shuffle-BN, batch-norm splits);
    ``config.gather`` chooses between the global-batch objective and the
    per-rank one (see :class:`~alignsphere.moco.MoCo`). Logging, the views,
    the optimiser (over the query encoder only) and the schedule are those of
    :class:`~alignsphere.training.HypersphereModule`.

    ``self.encoder`` is the query encoder, so the held-out metrics and the
    exported ``encoder.pt`` use it. In the module's state dict it sits under
    ``moco.encoder_q.``, next to ``moco.encoder_k.``, ``moco.queue`` and
    ``moco.queue_ptr``; :func:`alignsphere.training.load_encoder` and
    :func:`~alignsphere.moco.load_backbone_weights` read that layout.

    The queue, its pointer and the key encoder change in ``training_step``
    only, and only in training mode: Lightning's validation and any call in eval
    mode leave them as they are.

    Args:
        config: The training config as a :class:`TrainConfig` or its ``to_dict()``.
        encoder: A prebuilt query encoder; by default it is built from
            ``config.model``.
    """

    def __init__(
        self, config: TrainConfig | dict[str, Any], encoder: nn.Module | None = None
    ) -> None:
        super().__init__(config, encoder)
        # HypersphereModule registered the query encoder as ``encoder``; it moves
        # into the MoCo core so that the state dict contains it once.
        query_encoder = self._modules.pop("encoder")
        settings = self.train_config.moco
        self.moco = MoCo(
            query_encoder,
            self.train_config.objective,
            queue_size=settings.queue_size,
            momentum=settings.momentum,
            shuffle_bn=settings.shuffle_bn,
            bn_splits=settings.bn_splits,
            gather=self.train_config.gather,
            seed=self.train_config.seed,
        )
        self.objective = self.moco.objective
        self._step_index = 0
        if (
            settings.shuffle_bn
            and settings.bn_splits == 1
            and has_batch_norm(query_encoder)
        ):
            logger.info(
                "on one process, shuffle-BN with moco.bn_splits=1 leaves the key "
                "encoder's batch-norm statistics those of the query batch; set "
                "moco.bn_splits (for example 8) to emulate per-GPU batch norm. "
                "Under DDP the keys are shuffled across ranks"
            )

    @property
    def encoder(self) -> nn.Module:
        """The query encoder, the one that is trained and exported."""
        return self.moco.encoder_q

    def compute_objective(
        self, view1: torch.Tensor, view2: torch.Tensor
    ) -> ObjectiveOutput:
        """Run a MoCo step with ``view1`` as queries and ``view2`` as keys.

        In training mode it updates the key encoder and, after the objective
        is evaluated, the queue; in eval mode it changes neither.
        """
        generator = shuffle_generator(
            self.train_config.seed, self.current_epoch, self._step_index
        )
        return self.moco(view1, view2, generator=generator).objective_output()

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        self._step_index = batch_idx
        per_rank = batch[0].shape[0]
        if per_rank < self.moco.bn_splits:
            raise ValueError(
                f"a batch of {per_rank} images per rank cannot be split into "
                f"moco.bn_splits={self.moco.bn_splits} sub-batches; lower "
                "moco.bn_splits or raise optim.batch_size"
            )
        return super().training_step(batch, batch_idx)
