"""Run a training config end to end: data, module, loggers, checkpoints, resume.

Layout of the output folder::

    OUTPUT/config.yaml              the resolved config of the run
    OUTPUT/checkpoints/last.ckpt    written at the end of every epoch (resume)
    OUTPUT/checkpoints/epoch=NNN.ckpt   the latest epoch's checkpoint
    OUTPUT/checkpoints/.NAME.tmp    a checkpoint being written; renamed when whole
    OUTPUT/encoder.pt               weights and config, written when training ends
    OUTPUT/tensorboard/             TensorBoard event files
    OUTPUT/csv/version_N/metrics.csv   the same values as CSV, one file per start
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from alignsphere.training.callbacks import EncoderExport, HeldOutMetricsCallback
from alignsphere.training.checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    IncompleteCheckpointError,
    check_checkpoint,
    checkpoint_safe_globals,
    load_checkpoint,
)
from alignsphere.training.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    dump_config,
)
from alignsphere.training.data import ImageDataModule, stratified_subset
from alignsphere.training.module import HypersphereModule

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
ENCODER_FILE = "encoder.pt"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class TrainResult:
    """Files of a finished run.

    Attributes:
        output_dir: The run folder.
        encoder_path: The exported encoder (``encoder.pt``).
        last_checkpoint: The Lightning checkpoint of the last epoch.
        resumed_from: The checkpoint the run resumed from, or None.
        epochs: Epochs completed.
    """

    output_dir: Path
    encoder_path: Path
    last_checkpoint: Path
    resumed_from: Path | None
    epochs: int


def last_checkpoint_path(output_dir: str | os.PathLike[str]) -> Path:
    """Return ``OUTPUT/checkpoints/last.ckpt``, the file a run resumes from."""
    return Path(output_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def _epoch_of(path: Path) -> int:
    try:
        return int(path.stem.removeprefix("epoch="))
    except ValueError:
        return -1


def find_resume_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """Return the checkpoint that a run in ``output_dir`` resumes from, or None.

    That is the newest whole checkpoint of the run. Usually it is
    ``checkpoints/last.ckpt``. At the end of each epoch ``epoch=NNN.ckpt`` is
    written first and ``last.ckpt`` second, each to a temporary file that is
    renamed into place. A run killed between the two renames leaves the
    previous epoch's ``last.ckpt`` and a whole file of the next epoch, so
    that file is used. It counts only if its epoch is exactly one after the
    one ``last.ckpt`` holds, it was modified after ``last.ckpt``, and its
    saved config equals ``last.ckpt``'s apart from the ``trainer`` section
    and ``data.root``, so an epoch file of an earlier or another run in the
    folder is never taken. When ``last.ckpt`` is truncated or empty (a copy
    cut short, or a run killed while an older Lightning wrote it in place),
    the newest whole ``epoch=NNN.ckpt`` is used. Returns None when
    ``last.ckpt`` does not exist.

    Raises:
        CheckpointError: If ``last.ckpt`` is rejected as unsafe (there is no
            fallback then) or is not a file, or if it is incomplete and no
            epoch checkpoint is whole.
    """
    folder = Path(output_dir) / CHECKPOINT_DIR
    last = folder / LAST_CHECKPOINT
    if not last.exists():
        return None
    if not last.is_file():
        raise CheckpointError(
            f"{last} is not a file; remove it to resume from the newest epoch "
            "checkpoint, or pass --no-resume to start from scratch"
        )
    try:
        check_checkpoint(last)
        last_epoch, last_run = _saved_state(last)
    except IncompleteCheckpointError as error:
        problem = error
    else:
        # Only the next epoch's file, written after last.ckpt by the same run
        # (same config apart from the trainer section), can be what a kill
        # between the two renames left.
        following = folder / f"epoch={last_epoch + 1:03d}.ckpt"
        if (
            following.is_file()
            and following.stat().st_mtime_ns > last.stat().st_mtime_ns
        ):
            try:
                check_checkpoint(following)
                epoch, run = _saved_state(following)
            except IncompleteCheckpointError:
                return last
            if epoch == last_epoch + 1 and run == last_run:
                return following
        return last
    candidates = sorted(folder.glob("epoch=*.ckpt"), key=_epoch_of, reverse=True)
    for candidate in candidates:
        try:
            return check_checkpoint(candidate)
        except IncompleteCheckpointError:
            continue
    raise IncompleteCheckpointError(
        f"{problem}, and {folder} has no whole epoch=NNN.ckpt to resume from "
        f"instead; delete {last} or pass --no-resume to start from scratch"
    )


def _saved_state(path: Path) -> tuple[int, dict[str, Any] | None]:
    """Read a checked checkpoint's ``epoch`` and run settings without its tensors.

    The settings are the saved training config without its ``trainer``
    section and ``data.root``, which may change between the starts of one run.
    """
    try:
        with checkpoint_safe_globals():
            content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, ValueError, pickle.UnpicklingError) as error:
        raise IncompleteCheckpointError(
            f"checkpoint {path} cannot be read: {error}"
        ) from None
    if not isinstance(content, dict):
        return -1, None
    epoch = content.get("epoch")
    if not isinstance(epoch, int):
        epoch = -1
    saved = content.get("hyper_parameters", {}).get("config")
    if not isinstance(saved, dict):
        return epoch, None
    run = {key: value for key, value in saved.items() if key != "trainer"}
    if isinstance(run.get("data"), dict):
        run["data"] = {k: v for k, v in run["data"].items() if k != "root"}
    return epoch, run


def _is_rank_zero() -> bool:
    # Before the Trainer starts its process group, torchrun's RANK is the only
    # hint of the rank.
    return int(os.environ.get("RANK", "0")) == 0


def _check_resumable(path: Path, config: TrainConfig) -> int:
    """Check that a checkpoint is safe and of this run's model.

    Returns the number of epochs it completed (its 0-based ``epoch`` plus 1).
    """
    content = load_checkpoint(path)
    saved = content.get("hyper_parameters", {}).get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"checkpoint {path} was not written by alignsphere train; move it away "
            "or choose another --output folder"
        )
    saved_config = config_from_dict(saved)
    if saved_config.method != config.method:
        raise CheckpointError(
            f"checkpoint {path} was trained with method={saved_config.method}, but "
            f"the config has method={config.method}; resume with the same method "
            "or choose another --output folder"
        )
    for section in ("model", "data"):
        before, now = getattr(saved_config, section), getattr(config, section)
        if section == "data":
            # The data may move to another folder between the runs.
            before = {k: v for k, v in vars(before).items() if k != "root"}
            now = {k: v for k, v in vars(now).items() if k != "root"}
        if before != now:
            raise CheckpointError(
                f"checkpoint {path} was trained with {section} = {before}, but the "
                f"config has {section} = {now}; resume with the same {section} "
                "settings or choose another --output folder"
            )
    done = int(content.get("epoch", -1)) + 1
    if done > config.trainer.max_epochs:
        raise CheckpointError(
            f"checkpoint {path} has completed {done} epochs, more than "
            f"trainer.max_epochs={config.trainer.max_epochs}; set "
            f"trainer.max_epochs to {done} or more to continue this run, or choose "
            "another --output folder"
        )
    return done


# Loggers that Lightning's rank_zero_info writes to. Importing lightning.fabric
# or lightning.pytorch points it at that package's logger, so both are filtered.
_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


class _DropInterruptNotice(logging.Filter):
    """Filter that drops Lightning's "Detected KeyboardInterrupt" line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.lstrip().startswith("Detected KeyboardInterrupt")


@contextlib.contextmanager
def reraise_interrupt(trainer: L.Trainer) -> Iterator[None]:
    """Turn Lightning's exit on Ctrl-C back into ``KeyboardInterrupt``.

    Lightning 2.6 catches ``KeyboardInterrupt`` in ``Trainer.fit``, logs
    "Detected KeyboardInterrupt, attempting graceful shutdown", tears the run
    down and calls ``sys.exit(1)``, so a caller could not tell it from a
    failure nor print how to resume. Inside this block, Lightning's line is
    dropped, because the caller prints its own.
    """
    notice_filter = _DropInterruptNotice()
    for name in _RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(notice_filter)
    try:
        yield
    except SystemExit:
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        for name in _RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(notice_filter)


def build_module(config: TrainConfig) -> HypersphereModule:
    """Build the LightningModule of ``config.method``: in-batch or MoCo."""
    if config.method == "moco":
        from alignsphere.moco.module import MoCoModule

        return MoCoModule(config)
    return HypersphereModule(config)


def build_trainer(
    config: TrainConfig,
    output_dir: Path,
    callbacks: list[L.Callback],
    *,
    progress_bar: bool | None = None,
) -> L.Trainer:
    """Build the Lightning Trainer with loggers and per-epoch checkpoints."""
    trainer_config = config.trainer
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / CHECKPOINT_DIR,
        filename="epoch={epoch:03d}",
        auto_insert_metric_name=False,
        every_n_epochs=1,
        save_last=True,
        save_top_k=1,
        # Overwrite last.ckpt in place. With the counter on, a run folder that
        # was moved and resumed writes last-v1.ckpt, and last.ckpt goes stale.
        enable_version_counter=False,
    )
    loggers = [
        TensorBoardLogger(save_dir=output_dir, name="tensorboard", version=""),
        # Lightning's CSVLogger deletes an existing metrics.csv, so every start
        # of the run, a resume included, writes its own csv/version_N folder.
        CSVLogger(save_dir=output_dir, name="csv"),
    ]
    show_progress = (
        trainer_config.progress_bar if progress_bar is None else progress_bar
    )
    return L.Trainer(
        max_epochs=trainer_config.max_epochs,
        accelerator=trainer_config.accelerator,
        devices=trainer_config.devices,
        num_nodes=trainer_config.num_nodes,
        strategy=trainer_config.strategy,
        precision=trainer_config.precision,
        sync_batchnorm=trainer_config.sync_batchnorm,
        deterministic=trainer_config.deterministic,
        log_every_n_steps=trainer_config.log_every_n_steps,
        limit_train_batches=trainer_config.limit_train_batches,
        enable_progress_bar=show_progress,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        default_root_dir=output_dir,
        logger=loggers,
        callbacks=[
            *callbacks,
            LearningRateMonitor(logging_interval="epoch"),
            checkpoint,
        ],
        plugins=[AtomicCheckpointIO()],
    )


def train(
    config: TrainConfig,
    output_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress_bar: bool | None = None,
    callbacks: Sequence[L.Callback] = (),
) -> TrainResult:
    """Train an encoder as configured and write the run folder.

    With ``resume`` (the default) and an existing ``OUTPUT/checkpoints/last.ckpt``,
    the run continues from that checkpoint: weights, optimizer and scheduler
    state, and the epoch counter. A truncated ``last.ckpt`` is skipped, with a
    warning, for the newest whole ``epoch=NNN.ckpt`` (see
    :func:`find_resume_checkpoint`). Every checkpoint is written to a
    temporary file and renamed, so a kill never leaves a partly written one. The checkpoint is loaded with
    ``weights_only=True``, after a check that it names no type outside the
    allow-list and that its model and data settings match ``config``. The data
    order and the views depend only on the seed, the epoch and the batch index.
    So on deterministic kernels, a run killed mid-epoch and resumed ends with
    the weights of an uninterrupted run (a test checks this bit for bit on CPU).
    A raised ``trainer.max_epochs`` continues the run, but a cosine schedule
    keeps the length it started with, because its state is restored.

    Args:
        config: A validated training config.
        output_dir: Run folder; created if missing.
        resume: Continue from ``last.ckpt`` when it exists.
        progress_bar: Override ``config.trainer.progress_bar``.
        callbacks: Further Lightning callbacks, run before the built-in ones.

    Returns:
        A :class:`TrainResult`.

    Raises:
        CheckpointError: If ``last.ckpt`` is unsafe, or of another model or
            dataset, or if it and every epoch checkpoint are incomplete.
        alignsphere.data.DatasetNotFoundError: If the data is missing.
    """
    config.validate()
    output_dir = Path(output_dir)
    last = last_checkpoint_path(output_dir)
    resume_path = find_resume_checkpoint(output_dir) if resume else None
    if resume_path is not None:
        if resume_path != last:
            logger.warning(
                "%s is incomplete or holds an earlier epoch (the run stopped "
                "while it wrote checkpoints); resuming from %s, the newest whole "
                "checkpoint",
                last,
                resume_path,
            )
        done = _check_resumable(resume_path, config)
        logger.info(
            "resuming from %s (%d epoch%s completed)",
            resume_path,
            done,
            "" if done == 1 else "s",
        )

    if config.trainer.num_threads is not None:
        torch.set_num_threads(config.trainer.num_threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.data.name == "text":
        # Imported here so that image runs never import spaCy.
        from alignsphere.text.training import fit_text

        return fit_text(config, output_dir, resume_path, progress_bar, callbacks)

    data = ImageDataModule(config.data, config.optim.batch_size, config.seed)
    data.setup("fit")
    assert data.train_set is not None and data.test_set is not None
    try:
        module = build_module(config)
    except ValueError as error:
        raise ConfigError(f"invalid model config {config.model}: {error}") from None
    if _is_rank_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")

    all_callbacks: list[L.Callback] = list(callbacks)
    if config.heldout.num_images >= 2:
        heldout = stratified_subset(
            data.test_set, config.heldout.num_images, config.heldout.seed
        )
        all_callbacks.append(HeldOutMetricsCallback(heldout.images, config.heldout))
    all_callbacks.append(EncoderExport(output_dir / ENCODER_FILE))
    trainer = build_trainer(
        config, output_dir, all_callbacks, progress_bar=progress_bar
    )
    # NOTE: Trainer.fit takes weights_only from Lightning 2.6.0 on; older
    # releases reject the argument, so the project needs lightning>=2.6.
    with checkpoint_safe_globals(), reraise_interrupt(trainer):
        trainer.fit(
            module,
            datamodule=data,
            ckpt_path=resume_path,
            weights_only=True,
        )
    return TrainResult(
        output_dir=output_dir,
        encoder_path=output_dir / ENCODER_FILE,
        last_checkpoint=last,
        resumed_from=resume_path,
        epochs=trainer.current_epoch,
    )
