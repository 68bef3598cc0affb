"""Lightning callbacks: held-out alignment and uniformity, and the encoder export."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

from alignsphere.evaluation.heldout import measure_heldout
from alignsphere.training.checkpoint import save_encoder_file
from alignsphere.training.config import HeldOutConfig

logger = logging.getLogger(__name__)


class HeldOutMetricsCallback(L.Callback):
    """Log alignment and uniformity of held-out positive pairs every n epochs.

    At the end of every ``config.every_n_epochs``-th training epoch, rank zero
    measures the encoder in eval mode on ``images`` (see
    :func:`~alignsphere.evaluation.heldout.measure_heldout`) and writes
    ``heldout/align``, ``heldout/uniform`` (un-augmented images),
    ``heldout/uniform_views`` (the two views, averaged) and
    ``heldout/uniform_optimum`` to the trainer's loggers. The views are drawn with ``config.seed`` on every
    measurement, so the curves compare the same pairs across epochs.

    Args:
        images: ``(N, C, H, W)`` uint8 held-out images.
        config: How many, how often, alpha, t and the seed.
    """

    def __init__(self, images: torch.Tensor, config: HeldOutConfig) -> None:
        super().__init__()
        self.images = images[: config.num_images]
        self.config = config

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        if self.images.shape[0] < 2:
            return
        if (trainer.current_epoch + 1) % self.config.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        preset = pl_module.preset
        metrics = measure_heldout(
            pl_module.encoder,
            self.images,
            augmentation=pl_module.augmentation,
            transform=preset.eval_transform(),
            alpha=self.config.alpha,
            t=self.config.t,
            seed=self.config.seed,
            device=pl_module.device,
        )
        values = {
            "heldout/align": metrics.alignment,
            "heldout/uniform": metrics.uniformity,
            "heldout/uniform_views": metrics.uniformity_views,
            "heldout/uniform_optimum": metrics.uniformity_optimum,
        }
        # Only rank zero measures, so the values go to the loggers directly:
        # self.log would expect every rank to log them under DDP.
        values["epoch"] = trainer.current_epoch
        for experiment_logger in trainer.loggers:
            experiment_logger.log_metrics(values, step=trainer.global_step)
        logger.info(
            "epoch %d: held-out align %.4f, uniform %.4f (optimum %.4f)",
            trainer.current_epoch,
            metrics.alignment,
            metrics.uniformity,
            metrics.uniformity_optimum,
        )


class EncoderExport(L.Callback):
    """Write ``encoder.pt`` (weights and config, weights-only loadable) after training.

    It is written when ``fit`` returns normally, which includes a resume whose
    ``last.ckpt`` already holds the final epoch: Lightning then restores the
    weights but skips the training loop and its ``on_train_end``, so a run
    killed between its last checkpoint and the export still gets its file.

    Args:
        path: Output file.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            save_encoder_file(self.path, pl_module.encoder, pl_module.hparams["config"])
            logger.info("wrote %s", self.path)
