"""One entry point that loads any supported image dataset by name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alignsphere.data.cifar import load_cifar10
from alignsphere.data.digits import load_digits_dataset
from alignsphere.data.errors import DatasetNotFoundError
from alignsphere.data.image_folder import image_folder_layout, load_image_folder
from alignsphere.data.memory import InMemoryImageDataset
from alignsphere.data.stl10 import load_stl10

logger = logging.getLogger(__name__)

#: Dataset names accepted by :func:`load_dataset`, with their splits.
DATASET_SPLITS: dict[str, tuple[str, ...]] = {
    "digits": ("train", "test", "all"),
    "cifar10": ("train", "test"),
    "stl10": ("train", "test", "unlabeled", "train+unlabeled"),
    "imagefolder": (),  # any sub-folder name, or None for root itself
}

#: Folder searched when ``root`` is None: ``data`` in the working directory.
DEFAULT_DATA_ROOT = Path("data")


def list_datasets() -> list[str]:
    """Return the dataset names that :func:`load_dataset` accepts."""
    return list(DATASET_SPLITS)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str | None = "train",
    *,
    image_size: int | None = None,
    channels: int = 3,
    fold: int | None = None,
    num_threads: int | None = None,
    progress: bool = True,
) -> InMemoryImageDataset:
    """Load an image dataset into memory as uint8 images and int64 labels.

    The result carries the class names (``dataset.classes``) and their number
    (``dataset.num_classes``). Nothing is downloaded: a missing dataset raises
    :class:`DatasetNotFoundError` with the paths searched and how to get the data.

    Datasets:
        - ``digits``: scikit-learn's 1,797 8x8 digits, shipped with scikit-learn
          (``root`` is ignored). Splits ``train`` (1,347), ``test`` (450), ``all``.
        - ``cifar10``: ``root/cifar-10-batches-py`` (the official python
          batches) or an image folder ``root/<split>/<class>/*``, detected in
          that order. Splits ``train`` and ``test``.
        - ``stl10``: ``root/stl10_binary``. Splits ``train``, ``test``,
          ``unlabeled`` and ``train+unlabeled``; ``fold`` selects one of the ten
          predefined 1,000-image training folds.
        - ``imagefolder``: ``root/<split>/<class>/*``, or ``root/<class>/*`` when
          ``split`` is None (torchvision ImageFolder layout, classes sorted).

    Args:
        name: One of ``digits``, ``cifar10``, ``stl10``, ``imagefolder``.
        root: Data folder. Defaults to ``./data`` (relative to the working
            directory) for every dataset except ``digits``.
        split: Split name; see above. Defaults to ``train``.
        image_size: ``imagefolder`` only: resize the shorter side and
            center-crop every image to this square size while decoding.
        channels: ``imagefolder`` only: 3 (RGB, default) or 1 (grayscale).
        fold: ``stl10`` with ``split="train"`` only: training fold 0..9.
        num_threads: Decoding threads for image folders.
        progress: Show a progress bar while decoding image folders.

    Returns:
        The dataset, with images of shape (N, C, H, W).

    Raises:
        ValueError: On an unknown name or split, or an option the dataset does
            not take.
        DatasetNotFoundError: If the data is not under ``root``.
        CorruptImageError: If an image file cannot be decoded.

    Example:
        >>> train = load_dataset("digits", split="train", progress=False)
        >>> len(train), train.num_classes, train.image_shape
        (1347, 10, (1, 8, 8))
    """
    if name not in DATASET_SPLITS:
        raise ValueError(
            f"Unknown dataset {name!r}; valid names: {', '.join(DATASET_SPLITS)}"
        )
    splits = DATASET_SPLITS[name]
    if splits and split not in splits:
        raise ValueError(
            f"Invalid split {split!r} for {name}; valid splits: {', '.join(splits)}"
        )
    if name != "imagefolder" and (image_size is not None or channels != 3):
        raise ValueError(
            f"image_size and channels apply to 'imagefolder' only, not {name!r}"
        )
    if name != "stl10" and fold is not None:
        raise ValueError(f"fold applies to 'stl10' only, not {name!r}")

    if name == "digits":
        if root is not None:
            logger.debug("load_dataset('digits') ignores root=%s", root)
        return load_digits_dataset(split)

    data_root = Path(root).expanduser() if root is not None else DEFAULT_DATA_ROOT
    if name == "cifar10":
        return load_cifar10(
            data_root, split, num_threads=num_threads, progress=progress
        )
    if name == "stl10":
        return load_stl10(data_root, split, fold=fold)

    folder = data_root if split is None else data_root / split
    if split is not None and not folder.is_dir():
        raise DatasetNotFoundError(
            f"Image folder split {folder} not found. Expected "
            f"{image_folder_layout(folder)}; pass split=None to read class "
            f"folders directly under {data_root}.",
            searched=[folder],
        )
    return load_image_folder(
        folder,
        channels=channels,
        image_size=image_size,
        num_threads=num_threads,
        progress=progress,
        name=f"{data_root.name}/{split}" if split else data_root.name,
    )
