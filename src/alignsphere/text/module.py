"""Training a GRU sentence encoder with the Lightning trainer of the image encoders."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch import nn

from alignsphere.losses import ObjectiveOutput, parse_objective
from alignsphere.metrics import alignment, uniformity, uniformity_optimum
from alignsphere.text.encoder import GRUSentenceEncoder
from alignsphere.text.vocab import Vocabulary
from alignsphere.training.config import HeldOutConfig, ModelConfig, TrainConfig
from alignsphere.training.module import lightning_optimizers, log_objective

logger = logging.getLogger(__name__)

TEXT_ENCODERS = ("gru",)


def build_text_encoder(
    model: ModelConfig, vocab_size: int, vocabulary: Vocabulary | None = None
) -> GRUSentenceEncoder:
    """Build the encoder that ``model`` names, for a vocabulary of ``vocab_size``.

    ``model.options`` are keyword arguments of :class:`GRUSentenceEncoder`
    (``embedding_dim``, ``bidirectional``, ``num_layers``, ``dropout``).

    Raises:
        ValueError: On an unknown encoder name or option.
    """
    if model.name not in TEXT_ENCODERS:
        raise ValueError(
            f"invalid model.name={model.name!r} for data.name=text; valid: "
            f"{', '.join(TEXT_ENCODERS)}"
        )
    valid = ("embedding_dim", "bidirectional", "num_layers", "dropout")
    unknown = [key for key in model.options if key not in valid]
    if unknown:
        raise ValueError(
            f"unknown option model.options.{unknown[0]} of the gru encoder; valid: "
            f"{', '.join(valid)}"
        )
    return GRUSentenceEncoder(
        vocab_size, model.out_dim, vocabulary=vocabulary, **model.options
    )


class TextModule(L.LightningModule):
    """Train a sentence encoder on adjacent-sentence pairs with any objective.

    A batch is ``(first, second)``, padded word indices of the two sentences of
    each pair (:class:`~alignsphere.text.data.TextDataModule`). Both pass
    through the encoder in one call, and the objective compares the two halves,
    as :class:`~alignsphere.training.HypersphereModule` does with two views of
    an image. Logged every step and as epoch means: ``train/loss`` and
    ``train/<term>``.

    The only hyperparameter saved in checkpoints is ``config``; the vocabulary
    is stored in the encoder's state dict.

    Args:
        config: The training config (``data.name: text``).
        vocabulary: The corpus vocabulary the encoder's embedding table indexes.
    """

    def __init__(self, config: TrainConfig, vocabulary: Vocabulary) -> None:
        super().__init__()
        config.validate()
        self.save_hyperparameters({"config": config.to_dict()})
        self.train_config = config
        self.encoder = build_text_encoder(config.model, len(vocabulary), vocabulary)
        self.objective = parse_objective(config.objective, gather=config.gather)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Encode padded word indices to unit vectors."""
        return self.encoder(indices)

    def compute_objective(
        self, first: torch.Tensor, second: torch.Tensor
    ) -> ObjectiveOutput:
        """Encode both sentences of each pair in one call and evaluate the objective."""
        z1, z2 = self.encoder(torch.cat([first, second])).chunk(2)
        return self.objective(z1, z2)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        first, second = batch
        output = self.compute_objective(first, second)
        log_objective(self, output, first.shape[0])
        return output.total

    def configure_optimizers(self) -> Any:
        return lightning_optimizers(self.encoder.parameters(), self.train_config)


@torch.no_grad()
def measure_pairs(
    encoder: nn.Module,
    first: torch.Tensor,
    second: torch.Tensor,
    *,
    alpha: float = 2.0,
    t: float = 2.0,
    batch_size: int = 512,
) -> dict[str, float]:
    """Measure alignment and uniformity of sentence pairs in eval mode.

    Args:
        encoder: Maps ``(B, L)`` padded indices to unit vectors.
        first: ``(N, L)`` padded first sentences.
        second: ``(N, L)`` padded second sentences.
        alpha: Exponent of the alignment.
        t: Scale of the uniformity.
        batch_size: Sentences per forward pass.

    Returns:
        ``align`` (over the pairs), ``uniform`` (the mean of the two sides'
        uniformity, as the training term computes it) and ``uniform_optimum``
        (the population value of the uniform distribution on S^(d-1)).
    """
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device

    def encode(indices: torch.Tensor) -> torch.Tensor:
        parts = [
            encoder(indices[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, indices.shape[0], batch_size)
        ]
        return torch.cat(parts)

    z1, z2 = encode(first), encode(second)
    encoder.train(was_training)
    return {
        "align": float(alignment(z1, z2, alpha)),
        "uniform": float((uniformity(z1, t) + uniformity(z2, t)) / 2),
        "uniform_optimum": uniformity_optimum(z1.shape[1], t),
    }


class HeldOutPairsCallback(L.Callback):
    """Log alignment and uniformity of held-out adjacent-sentence pairs.

    At the end of every ``config.every_n_epochs``-th epoch, rank zero writes
    ``heldout/align``, ``heldout/uniform`` and ``heldout/uniform_optimum`` to
    the trainer's loggers (see :func:`measure_pairs`).

    Args:
        first: ``(N, L)`` padded first sentences of the held-out pairs.
        second: ``(N, L)`` padded second sentences.
        config: How often, alpha and t.
    """

    def __init__(
        self, first: torch.Tensor, second: torch.Tensor, config: HeldOutConfig
    ) -> None:
        super().__init__()
        self.first = first
        self.second = second
        self.config = config

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        if (trainer.current_epoch + 1) % self.config.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        metrics = measure_pairs(
            pl_module.encoder,
            self.first,
            self.second,
            alpha=self.config.alpha,
            t=self.config.t,
        )
        values: dict[str, float] = {f"heldout/{k}": v for k, v in metrics.items()}
        # Only rank zero measures, so the values go to the loggers directly.
        values["epoch"] = trainer.current_epoch
        for experiment_logger in trainer.loggers:
            experiment_logger.log_metrics(values, step=trainer.global_step)
        logger.info(
            "epoch %d: held-out pairs align %.4f, uniform %.4f (optimum %.4f)",
            trainer.current_epoch,
            metrics["align"],
            metrics["uniform"],
            metrics["uniform_optimum"],
        )
