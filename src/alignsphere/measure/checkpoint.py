"""Measure an encoder trained by ``alignsphere train`` on a split of its dataset.

The checkpoint (an ``encoder.pt``, a Lightning ``.ckpt`` or a run folder)
carries the training config, so the dataset, its augmentation preset and the
held-out split come from it. Positive pairs are two augmented views of every
image, drawn with the training augmentation from a fixed seed. By default
uniformity runs over the features of the un-augmented images (the preset's
deterministic evaluation transform), as the per-epoch held-out metrics of
training do.

This module imports the training stack (Lightning among it) when it is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from alignsphere.measure.arrays import TensorArray
from alignsphere.measure.core import (
    UNIFORMITY_SIDES,
    MeasureOptions,
    PositivePairs,
    UniformityRows,
    build_uniformity_rows,
    measure_rows,
)
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.report import MeasureReport
from alignsphere.measure.rows import RowSet

logger = logging.getLogger(__name__)

#: Uniformity choices for a checkpoint: those of embedding files, plus
#: ``images``, the features of the un-augmented images.
CHECKPOINT_UNIFORMITY_SIDES = ("images", *UNIFORMITY_SIDES)


def encode_dataset(
    encoder: torch.nn.Module,
    images: torch.Tensor,
    *,
    augmentation,
    transform,
    layer: str = "output",
    seed: int = 0,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return features of a layer for two augmented views and the clean images.

    Args:
        encoder: An :class:`~alignsphere.models.Encoder`.
        images: ``(N, C, H, W)`` uint8 images.
        augmentation: A :class:`~alignsphere.data.BatchAugmentation`, called as
            ``augmentation(batch, generator)``.
        transform: The preset's deterministic evaluation transform.
        layer: ``"output"``, ``"pooled"`` or a stage name of the encoder.
        seed: Seed of the views.
        batch_size: Images per forward pass.
        device: Device to run on.

    Returns:
        ``(view1, view2, clean)`` float32 features on the CPU.
    """
    from alignsphere.evaluation.features import eval_mode, forward_layer, resolve_layer

    stage = resolve_layer(encoder, layer)
    generator = torch.Generator().manual_seed(seed)
    outputs: tuple[list[torch.Tensor], ...] = ([], [], [])
    with eval_mode(encoder):
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device)
            inputs = (
                augmentation(batch, generator),
                augmentation(batch, generator),
                transform(batch),
            )
            for out, view in zip(outputs, inputs, strict=True):
                out.append(forward_layer(encoder, view, stage).flatten(1).float().cpu())
    return tuple(torch.cat(parts) for parts in outputs)


def measure_checkpoint(
    checkpoint: str | Path,
    *,
    data_root: str | Path | None = None,
    split: str | None = None,
    limit: int | None = None,
    layer: str = "output",
    uniformity_over: str = "images",
    dedup: bool = False,
    batch_size: int = 512,
    device: str = "cpu",
    options: MeasureOptions | None = None,
    plot: str | Path | None = None,
) -> MeasureReport:
    """Measure a trained encoder on a split of the dataset it was trained on.

    Args:
        checkpoint: ``encoder.pt``, Lightning ``.ckpt`` or run folder of
            ``alignsphere train``; loaded with ``torch.load(weights_only=True)``.
        data_root: Data folder, when the data has moved since training.
        split: Split to measure; defaults to the config's ``test_split``.
        limit: Measure a stratified subset of this many images (seeded).
        layer: ``"output"`` (the unit-norm output, default), ``"pooled"`` (the
            backbone features before the head) or a stage name such as ``fc7``.
        uniformity_over: ``"images"`` (un-augmented images, default), or as in
            :func:`~alignsphere.measure.measure_embeddings` over the two views:
            ``"all"``, ``"first"``, ``"second"`` or ``"mean"``.
        dedup: Drop exact duplicate feature rows before uniformity.
        batch_size: Images per forward pass.
        device: Torch device.
        options: How to compute; defaults to :class:`MeasureOptions`. Its seed
            also fixes the views and the subset.
        plot: PNG file for histograms and a 2-D projection.

    Returns:
        The report.

    Raises:
        MeasureInputError: the checkpoint or the data cannot be loaded, or the
            layer does not exist. The message names the failure and the fix.
    """
    from alignsphere.data import (
        CorruptImageError,
        DatasetNotFoundError,
        InvalidDatasetFileError,
    )
    from alignsphere.training.checkpoint import CheckpointError, load_encoder
    from alignsphere.training.data import load_split, resolve_preset

    if uniformity_over not in CHECKPOINT_UNIFORMITY_SIDES:
        raise MeasureInputError(
            f"uniformity_over must be one of {', '.join(CHECKPOINT_UNIFORMITY_SIDES)} "
            f"for a checkpoint, got {uniformity_over!r}"
        )
    options = options or MeasureOptions()
    try:
        encoder, config = load_encoder(checkpoint, map_location=device)
    except CheckpointError as error:
        raise MeasureInputError(str(error)) from None
    data_config = config.data
    if data_root is not None:
        data_config.root = str(data_root)
    split = split or data_config.test_split
    try:
        dataset = load_split(data_config, split, limit, options.seed)
    except (DatasetNotFoundError, CorruptImageError, InvalidDatasetFileError) as error:
        raise MeasureInputError(
            f"{' '.join(str(error).split())} (pass --data-root DIR if the data has moved)"
        ) from None
    except ValueError as error:
        raise MeasureInputError(str(error)) from None
    preset = resolve_preset(data_config)
    logger.info(
        "encoding %d %s images of %s, layer %s",
        len(dataset.images),
        split,
        data_config.name,
        layer,
    )
    try:
        view1, view2, clean = encode_dataset(
            encoder,
            dataset.images,
            augmentation=preset.train_augmentation(),
            transform=preset.eval_transform(),
            layer=layer,
            seed=options.seed,
            batch_size=batch_size,
            device=device,
        )
    except ValueError as error:
        raise MeasureInputError(f"{checkpoint}: {error}") from None

    where = f"{data_config.name} {split} split"
    first = TensorArray(view1, f"view 1 of the {where}", _row_namer("view 1", where))
    second = TensorArray(view2, f"view 2 of the {where}", _row_namer("view 2", where))
    pairs = PositivePairs(
        RowSet.of(first),
        RowSet.of(second),
        f"{len(view1):,} pairs: two augmentations ({preset.name} preset, seed "
        f"{options.seed}) of each image of the {where}",
    )
    if uniformity_over == "images":
        images = TensorArray(clean, f"un-augmented {where}", _row_namer("image", where))
        sides = [RowSet.of(images)]
        description = f"the un-augmented images of the {where} ({preset.name} evaluation transform)"
    elif uniformity_over == "all":
        sides, description = (
            [RowSet.of(first, second)],
            "both augmented views of every image",
        )
    elif uniformity_over == "first":
        sides, description = (
            [RowSet.of(first)],
            "the first augmented view of every image",
        )
    elif uniformity_over == "second":
        sides, description = (
            [RowSet.of(second)],
            "the second augmented view of every image",
        )
    else:
        sides = [RowSet.of(first), RowSet.of(second)]
        description = "the mean of the values over each augmented view"
    rows: UniformityRows = build_uniformity_rows(sides, description, dedup, options)
    inputs = [
        f"{checkpoint}: {config.model.name} encoder, layer {layer} "
        f"({view1.shape[1]} features)",
        f"{where}: {len(view1):,} images"
        + (f" (stratified subset of {limit})" if limit else ""),
    ]
    return measure_rows(rows, pairs, options=options, inputs=inputs, plot=plot)


def _row_namer(kind: str, where: str):
    def name(row: int) -> str:
        return f"the features of {kind} {row} (counting from 0) of the {where}"

    return name
