"""STL-10 in its binary release format (the ``stl10_binary`` folder)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from alignsphere.data.errors import DatasetNotFoundError, InvalidDatasetFileError
from alignsphere.data.memory import UNLABELED, InMemoryImageDataset

logger = logging.getLogger(__name__)

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_FOLDER = "stl10_binary"
STL10_IMAGE_SIZE = 96
STL10_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")
_IMAGE_BYTES = 3 * STL10_IMAGE_SIZE * STL10_IMAGE_SIZE
_NUM_FOLDS = 10


def find_stl10(root: str | os.PathLike[str]) -> Path:
    """Find the STL-10 binary folder: ``root/stl10_binary`` or ``root`` itself.

    Raises:
        DatasetNotFoundError: If neither folder contains ``class_names.txt``. The
            message explains how to obtain STL-10.
    """
    root = Path(root).expanduser()
    candidates = [root / STL10_FOLDER, root]
    for folder in candidates:
        if (folder / "class_names.txt").is_file():
            return folder
    raise DatasetNotFoundError(
        f"STL-10 not found: looked for class_names.txt in {candidates[0]} and "
        f"{candidates[1]}. {_stl10_instructions(root)}",
        searched=candidates,
    )


def _stl10_instructions(root: Path) -> str:
    return (
        f"Download {STL10_URL} (2.6 GB) and run "
        f"`tar xzf stl10_binary.tar.gz -C {root}` (creates {root / STL10_FOLDER})"
    )


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"STL-10 file {path} not found. {_stl10_instructions(path.parent.parent)}",
            searched=[path],
        )
    return path


def count_stl10_images(path: str | os.PathLike[str]) -> int:
    """Count the images in an STL-10 ``*_X.bin`` file from its size.

    Raises:
        InvalidDatasetFileError: If the file size is not a multiple of one image
            (27,648 bytes), which means it is truncated.
    """
    size = Path(path).stat().st_size
    if size % _IMAGE_BYTES != 0:
        raise InvalidDatasetFileError(
            f"{path} has {size} bytes, not a multiple of {_IMAGE_BYTES} "
            "(3 x 96 x 96); the file is truncated or not an STL-10 image file"
        )
    return size // _IMAGE_BYTES


def read_stl10_images(
    path: str | os.PathLike[str], out: torch.Tensor | None = None
) -> torch.Tensor:
    """Read an STL-10 ``*_X.bin`` file into a uint8 tensor of shape (N, 3, 96, 96).

    The file stores each image as 3 channels of 96x96 bytes in column-major
    (Fortran) order, so each channel is transposed after the reshape. The file
    is memory-mapped and copied once into the result.

    Args:
        path: Image file.
        out: Optional uint8 tensor of shape (N, 3, 96, 96) to fill, so that
            several files can be concatenated without a second copy.

    Raises:
        InvalidDatasetFileError: If the file is truncated.
    """
    count = count_stl10_images(path)
    shape = (count, 3, STL10_IMAGE_SIZE, STL10_IMAGE_SIZE)
    if out is None:
        out = torch.empty(shape, dtype=torch.uint8)
    elif tuple(out.shape) != shape or out.dtype != torch.uint8:
        raise ValueError(f"out must be a uint8 tensor of shape {shape}")
    if count == 0:
        return out
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=shape)
    out.numpy()[...] = raw.transpose(0, 1, 3, 2)
    del raw
    return out


def read_stl10_labels(path: str | os.PathLike[str], num_classes: int) -> torch.Tensor:
    """Read an STL-10 ``*_y.bin`` file (uint8 labels 1..10) as int64 labels 0..9.

    Raises:
        InvalidDatasetFileError: If a label lies outside 1..num_classes.
    """
    raw = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if raw.size and (raw.min() < 1 or raw.max() > num_classes):
        raise InvalidDatasetFileError(
            f"{path} contains labels from {raw.min()} to {raw.max()}, expected "
            f"1..{num_classes}"
        )
    return torch.from_numpy(raw - 1)


def _read_labeled(folder: Path, split: str, num_classes: int):
    images = read_stl10_images(_require(folder / f"{split}_X.bin"))
    labels = read_stl10_labels(_require(folder / f"{split}_y.bin"), num_classes)
    if len(labels) != len(images):
        raise InvalidDatasetFileError(
            f"{folder / f'{split}_X.bin'} contains {len(images)} images but "
            f"{folder / f'{split}_y.bin'} contains {len(labels)} labels"
        )
    return images, labels


def _read_fold(folder: Path, fold: int, train_size: int) -> torch.Tensor:
    lines = _require(folder / "fold_indices.txt").read_text().splitlines()
    if len(lines) < _NUM_FOLDS:
        raise InvalidDatasetFileError(
            f"{folder / 'fold_indices.txt'} has {len(lines)} lines, expected "
            f"{_NUM_FOLDS}"
        )
    index = torch.tensor([int(value) for value in lines[fold].split()])
    if index.numel() and (index.min() < 0 or index.max() >= train_size):
        raise InvalidDatasetFileError(
            f"{folder / 'fold_indices.txt'} line {fold + 1} has indices outside "
            f"the {train_size} training images"
        )
    return index


def load_stl10(
    root: str | os.PathLike[str], split: str = "train", *, fold: int | None = None
) -> InMemoryImageDataset:
    """Load STL-10 (96x96 RGB, 10 classes) from its binary release.

    Splits: ``train`` (5,000 labeled), ``test`` (8,000 labeled), ``unlabeled``
    (100,000 images with label -1) and ``train+unlabeled`` (both, 105,000, the
    set used for unsupervised training). The unlabeled part takes 2.8 GB in
    memory as uint8.

    Args:
        root: Folder that contains ``stl10_binary``, or that folder itself.
        split: One of ``train``, ``test``, ``unlabeled``, ``train+unlabeled``.
        fold: For ``split="train"`` only: keep the 1,000 training images of this
            predefined fold (0..9, line ``fold + 1`` of ``fold_indices.txt``).

    Returns:
        uint8 images of shape (N, 3, 96, 96); labels 0..9, or -1 for unlabeled
        images.

    Raises:
        DatasetNotFoundError: If the folder or a needed file is missing.
        InvalidDatasetFileError: If a file is truncated or has invalid labels.
        ValueError: On an unknown split or a fold outside 0..9 or with another
            split.
    """
    if split not in STL10_SPLITS:
        raise ValueError(
            f"Invalid STL-10 split {split!r}; expected one of {list(STL10_SPLITS)}"
        )
    if fold is not None and (split != "train" or not 0 <= fold < _NUM_FOLDS):
        raise ValueError(
            f"fold={fold} is invalid: folds 0..{_NUM_FOLDS - 1} exist for the "
            f"train split only, got split {split!r}"
        )
    folder = find_stl10(root)
    classes = [
        line.strip()
        for line in (folder / "class_names.txt").read_text().splitlines()
        if line.strip()
    ]

    labeled = None
    if split in ("train", "train+unlabeled"):
        labeled = _read_labeled(folder, "train", len(classes))
        if fold is not None:
            index = _read_fold(folder, fold, len(labeled[0]))
            labeled = labeled[0][index], labeled[1][index]
    elif split == "test":
        labeled = _read_labeled(folder, "test", len(classes))

    if split in ("train", "test"):
        images, labels = labeled
    else:
        # Fill one tensor so the 2.8 GB unlabeled part is copied only once.
        unlabeled_file = _require(folder / "unlabeled_X.bin")
        offset = 0 if labeled is None else len(labeled[0])
        total = offset + count_stl10_images(unlabeled_file)
        images = torch.empty(
            (total, 3, STL10_IMAGE_SIZE, STL10_IMAGE_SIZE), dtype=torch.uint8
        )
        labels = torch.full((total,), UNLABELED, dtype=torch.int64)
        if labeled is not None:
            images[:offset] = labeled[0]
            labels[:offset] = labeled[1]
        read_stl10_images(unlabeled_file, out=images[offset:])
    logger.info("Loaded %d STL-10 %s images from %s", len(images), split, folder)
    return InMemoryImageDataset(images, labels, classes, name=f"stl10/{split}")
