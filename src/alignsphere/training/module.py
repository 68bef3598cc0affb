"""The LightningModule that trains an encoder with any objective of the core."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import nn

from alignsphere.data import AugmentationPreset
from alignsphere.distributed import world_size
from alignsphere.losses import ObjectiveOutput, parse_objective
from alignsphere.training.config import ModelConfig, TrainConfig, config_from_dict
from alignsphere.training.data import resolve_preset, view_generator

logger = logging.getLogger(__name__)


def build_encoder_from_config(
    model: ModelConfig, preset: AugmentationPreset
) -> nn.Module:
    """Build the configured encoder with :func:`alignsphere.models.build_encoder`.

    ``in_channels`` comes from the preset, and an encoder that takes
    ``input_dim`` (the MLP) gets channels x height x width of the preset's views
    unless ``model.options`` sets it.

    Raises:
        ValueError: On an unknown encoder name or option; the message comes from
            the model registry and lists the valid ones.
    """
    from alignsphere.models import build_encoder, encoder_parameters

    options = dict(model.options)
    if "input_dim" in encoder_parameters(model.name) and "input_dim" not in options:
        height, width = preset.image_size
        options["input_dim"] = preset.in_channels * height * width
    return build_encoder(
        model.name, in_channels=preset.in_channels, out_dim=model.out_dim, **options
    )


def build_optimizer(
    parameters: Any, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """Build SGD or Adam and its epoch-wise learning-rate schedule from the config.

    The learning rate is ``optim.base_lr * optim.batch_size / 256`` (0.12 per
    256 images in Wang & Isola 2020) unless ``optim.lr`` is set. The schedule
    steps once per epoch: ``step`` multiplies the rate by ``gamma`` at each
    milestone epoch, ``cosine`` anneals it to 0 at ``trainer.max_epochs``, and
    ``constant`` has no scheduler.
    """
    optim = config.optim
    optimizer: torch.optim.Optimizer
    if optim.optimizer == "adam":
        optimizer = torch.optim.Adam(
            parameters, lr=optim.learning_rate, weight_decay=optim.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            parameters,
            lr=optim.learning_rate,
            momentum=optim.momentum,
            weight_decay=optim.weight_decay,
        )
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    if optim.schedule == "step":
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(optim.milestones), gamma=optim.gamma
        )
    elif optim.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.trainer.max_epochs
        )
    else:
        scheduler = None
    return optimizer, scheduler


def lightning_optimizers(parameters: Any, config: TrainConfig) -> Any:
    """Return :func:`build_optimizer`'s result in ``configure_optimizers`` form."""
    optimizer, scheduler = build_optimizer(parameters, config)
    if scheduler is None:
        return optimizer
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
    }


def log_objective(
    module: L.LightningModule, output: ObjectiveOutput, batch_size: int
) -> None:
    """Log ``train/loss`` and each ``train/<term>`` per step and as epoch means."""
    sync = world_size() > 1
    module.log(
        "train/loss",
        output.total,
        on_step=True,
        on_epoch=True,
        prog_bar=True,
        batch_size=batch_size,
        sync_dist=sync,
    )
    for name, value in output.terms.items():
        module.log(
            f"train/{name}",
            value,
            on_step=True,
            on_epoch=True,
            batch_size=batch_size,
            sync_dist=sync,
        )


class HypersphereModule(L.LightningModule):
    """Train an encoder on positive pairs with an alignment/uniformity objective.

    Each batch of uint8 images is augmented twice, per sample, on the batch's
    device (the preset's :class:`~alignsphere.data.BatchAugmentation`); both views
    pass through the encoder in one forward pass, so batch norm sees them
    together, and the objective compares the two halves. The views of a batch are
    drawn from a generator seeded by ``(seed, epoch, batch index, rank)``, which
    makes a resumed run draw what an uninterrupted one draws.

    Logged every step and as epoch means: ``train/loss`` (the weighted total) and
    ``train/<term>`` (each unweighted term).

    The only hyperparameter saved in checkpoints is ``config``, the training
    config as plain dicts, lists and scalars, so that checkpoints load with
    ``torch.load(weights_only=True)`` and no extra allowed type.

    Args:
        config: The training config as a :class:`TrainConfig` or its ``to_dict()``.
        encoder: A prebuilt encoder; by default it is built from ``config.model``.
    """

    def __init__(
        self, config: TrainConfig | dict[str, Any], encoder: nn.Module | None = None
    ) -> None:
        super().__init__()
        if isinstance(config, TrainConfig):
            config.validate()
            plain = config.to_dict()
        else:
            plain = dict(config)
            config = config_from_dict(plain)
        self.save_hyperparameters({"config": plain})
        self.train_config = config
        self.preset: AugmentationPreset = resolve_preset(config.data)
        self.augmentation = self.preset.train_augmentation()
        self.encoder = (
            encoder
            if encoder is not None
            else build_encoder_from_config(config.model, self.preset)
        )
        self.objective = parse_objective(config.objective, gather=config.gather)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode preprocessed images to unit vectors."""
        return self.encoder(images)

    def compute_objective(
        self, view1: torch.Tensor, view2: torch.Tensor
    ) -> ObjectiveOutput:
        """Encode two views in one forward pass and evaluate the objective.

        Under DDP with ``gather`` on, uniformity and the contrastive loss span
        the batch gathered from all ranks, with gradients that make W ranks
        equal one process holding the global batch.
        """
        features = self.encoder(torch.cat([view1, view2]))
        z1, z2 = features.chunk(2)
        return self.objective(z1, z2)

    def make_views(
        self, images: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the two augmented views of a uint8 batch for a given step."""
        generator = view_generator(
            self.train_config.seed, self.current_epoch, step, self.global_rank
        )
        return self.augmentation.two_views(images, generator)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, _ = batch
        view1, view2 = self.make_views(images, batch_idx)
        output = self.compute_objective(view1, view2)
        log_objective(self, output, images.shape[0])
        return output.total

    def configure_optimizers(self) -> Any:
        return lightning_optimizers(self.encoder.parameters(), self.train_config)
