"""Build a text run for :func:`alignsphere.training.train`; load trained text encoders."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L

from alignsphere.text.data import TextDataModule, subset_pairs
from alignsphere.text.encoder import GRUSentenceEncoder
from alignsphere.text.module import HeldOutPairsCallback, TextModule, build_text_encoder
from alignsphere.training.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from alignsphere.training.run import TrainResult

logger = logging.getLogger(__name__)


def build_text_run(
    config: TrainConfig,
) -> tuple[TextDataModule, TextModule, list[L.Callback]]:
    """Read the corpus and build the data module, the module and the callbacks.

    The held-out callback measures ``heldout.num_images`` held-out pairs, a
    random subset fixed by ``heldout.seed``. It is left out when that number is
    below 2 or the corpus has fewer than 2 held-out pairs.

    Raises:
        ConfigError: On an invalid ``model`` section for a text encoder.
        TextDataNotFoundError: If the corpus is missing.
        TextDataError: If it cannot be decoded or has no training pair.
    """
    data = TextDataModule(config.data, config.optim.batch_size, config.seed)
    data.setup("fit")
    assert data.corpus is not None
    try:
        module = TextModule(config, data.corpus.vocabulary)
    except ValueError as error:
        raise ConfigError(f"invalid model config {config.model}: {error}") from None
    callbacks: list[L.Callback] = []
    limit = config.heldout.num_images
    if config.data.test_limit is not None:
        limit = min(limit, config.data.test_limit)
    heldout = subset_pairs(data.corpus.heldout_pairs, limit, config.heldout.seed)
    if limit >= 2 and heldout.numel() >= 2:
        first, second = data.corpus.pair_batch(heldout.tolist())
        callbacks.append(HeldOutPairsCallback(first, second, config.heldout))
    return data, module, callbacks


def load_text_encoder(
    path: str | os.PathLike[str], map_location: str = "cpu"
) -> tuple[GRUSentenceEncoder, TrainConfig]:
    """Rebuild a trained text encoder, its vocabulary included.

    Args:
        path: An ``encoder.pt``, a Lightning ``.ckpt`` of ``alignsphere train``
            or a run folder.
        map_location: Device of the weights.

    Returns:
        ``(encoder, config)`` with the encoder in eval mode.

    Raises:
        CheckpointError: If the file is missing or unsafe, was not trained on
            text, or its weights do not fit the stored config.
    """
    from alignsphere.training.checkpoint import CheckpointError, read_encoder_checkpoint
    from alignsphere.training.config import config_from_dict

    saved, state = read_encoder_checkpoint(path)
    try:
        config = config_from_dict(saved)
    except ConfigError as error:
        raise CheckpointError(
            f"checkpoint {path} stores an invalid config: {error}"
        ) from None
    if config.data.name != "text":
        raise CheckpointError(
            f"checkpoint {path} is a {config.model.name} encoder trained on "
            f"data.name={config.data.name}, not a text encoder; use alignsphere "
            "evaluate for image encoders"
        )
    weight = state.get("embedding.weight")
    if weight is None:
        raise CheckpointError(f"checkpoint {path} has no embedding.weight")
    try:
        encoder = build_text_encoder(config.model, int(weight.shape[0]))
        encoder.load_state_dict(state, strict=True)
    except (ValueError, RuntimeError) as error:
        summary = " ".join(str(error).split())[:400]
        raise CheckpointError(
            f"checkpoint {path} does not fit a {config.model.name} encoder "
            f"(out_dim={config.model.out_dim}, options={config.model.options}): "
            f"{summary}"
        ) from None
    if encoder.vocabulary is None:
        raise CheckpointError(f"checkpoint {path} stores no vocabulary")
    return encoder.to(map_location).eval(), config


def fit_text(
    config: TrainConfig,
    output_dir: Path,
    resume_path: Path | None,
    progress_bar: bool | None,
    callbacks: Sequence[L.Callback],
) -> TrainResult:
    """Train a text encoder; the part of :func:`~alignsphere.training.train` for text.

    ``train`` checks the config and the resume checkpoint, sets the threads and
    the seed, and then calls this function when ``data.name`` is ``text``. The
    run folder has the layout of an image run.
    """
    from alignsphere.training.callbacks import EncoderExport
    from alignsphere.training.checkpoint import checkpoint_safe_globals
    from alignsphere.training.config import dump_config
    from alignsphere.training.run import (
        CONFIG_FILE,
        ENCODER_FILE,
        TrainResult,
        _is_rank_zero,
        build_trainer,
        last_checkpoint_path,
        reraise_interrupt,
    )

    if config.method != "simclr":
        raise ConfigError(
            f"method={config.method} is not available for data.name=text; "
            "remove it (text runs encode both sentences with one encoder)"
        )
    data, module, run_callbacks = build_text_run(config)
    if _is_rank_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")
    all_callbacks = [
        *callbacks,
        *run_callbacks,
        EncoderExport(output_dir / ENCODER_FILE),
    ]
    trainer = build_trainer(
        config, output_dir, all_callbacks, progress_bar=progress_bar
    )
    with checkpoint_safe_globals(), reraise_interrupt(trainer):
        trainer.fit(module, datamodule=data, ckpt_path=resume_path, weights_only=True)
    return TrainResult(
        output_dir=output_dir,
        encoder_path=output_dir / ENCODER_FILE,
        last_checkpoint=last_checkpoint_path(output_dir),
        resumed_from=resume_path,
        epochs=trainer.current_epoch,
    )
