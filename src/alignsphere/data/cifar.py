"""CIFAR-10 in torchvision's python pickle format or as an image folder."""

from __future__ import annotations

import importlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alignsphere.data.errors import DatasetNotFoundError, InvalidDatasetFileError
from alignsphere.data.image_folder import load_image_folder
from alignsphere.data.memory import InMemoryImageDataset

logger = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_PICKLE_FOLDER = "cifar-10-batches-py"
CIFAR10_SPLIT_FILES = {
    "train": [f"data_batch_{index}" for index in range(1, 6)],
    "test": ["test_batch"],
}
CIFAR10_META_FILE = "batches.meta"
_CIFAR_IMAGE_BYTES = 3 * 32 * 32

# Globals that a CIFAR batch pickle needs: numpy arrays and dtypes, and
# _codecs.encode, which Python 3 uses for bytes in protocol 2 pickles. Anything
# else is rejected, so a crafted file cannot run code when it is loaded.
_ALLOWED_PICKLE_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR batch file"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # numpy 2 renamed numpy.core to numpy._core; importing the old name
            # emits a DeprecationWarning.
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return getattr(importlib.import_module(module), name)


def read_cifar_pickle(path: str | os.PathLike[str]) -> dict[bytes, Any]:
    """Read one CIFAR python batch file without running arbitrary pickle code.

    The official files are Python 2 pickles of a dict with bytes keys. Only the
    globals needed to rebuild numpy arrays are allowed.

    Args:
        path: A ``data_batch_N``, ``test_batch`` or ``batches.meta`` file.

    Returns:
        The unpickled dict, with bytes keys such as ``b"data"`` and ``b"labels"``.

    Raises:
        InvalidDatasetFileError: If the file is not a pickled dict or needs a
            global other than numpy's array constructors.
    """
    try:
        with open(path, "rb") as file:
            content = _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InvalidDatasetFileError(
            f"{path} is not a valid CIFAR python batch file: {error}"
        ) from error
    if not isinstance(content, dict):
        raise InvalidDatasetFileError(
            f"{path} is not a valid CIFAR python batch file: expected a pickled "
            f"dict, got {type(content).__name__}"
        )
    return content


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    content = read_cifar_pickle(path)
    if b"data" not in content or b"labels" not in content:
        raise InvalidDatasetFileError(
            f"{path} has no b'data' and b'labels' entries; keys are "
            f"{sorted(content)}. Only CIFAR-10 batches are supported."
        )
    data = np.asarray(content[b"data"])
    labels = np.asarray(content[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_IMAGE_BYTES:
        raise InvalidDatasetFileError(
            f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
            f"{data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise InvalidDatasetFileError(
            f"{path}: {data.shape[0]} images but {labels.shape[0]} labels"
        )
    return data, labels


def load_cifar10_pickle(
    folder: str | os.PathLike[str], split: str = "train"
) -> InMemoryImageDataset:
    """Load CIFAR-10 from the official python batches.

    Each row of ``b"data"`` contains 1,024 red, then 1,024 green, then 1,024 blue
    values of a 32x32 image in row-major order, so a reshape to (N, 3, 32, 32) is
    exact. Class names come from ``batches.meta``. The files are read directly
    rather than through torchvision.datasets.CIFAR10, which also demands the
    official MD5 checksums.

    Args:
        folder: The ``cifar-10-batches-py`` folder.
        split: ``"train"`` (data_batch_1 to data_batch_5, 50,000 images) or
            ``"test"`` (test_batch, 10,000 images).

    Returns:
        uint8 images of shape (N, 3, 32, 32) with labels 0..9.

    Raises:
        DatasetNotFoundError: If a batch file or ``batches.meta`` is missing.
        InvalidDatasetFileError: If a file has the wrong content.
        ValueError: On an unknown split.
    """
    folder = Path(folder).expanduser()
    if split not in CIFAR10_SPLIT_FILES:
        raise ValueError(
            f"Invalid CIFAR-10 split {split!r}; expected one of "
            f"{sorted(CIFAR10_SPLIT_FILES)}"
        )
    needed = [folder / CIFAR10_META_FILE] + [
        folder / name for name in CIFAR10_SPLIT_FILES[split]
    ]
    missing = [path for path in needed if not path.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 file {missing[0]} not found ({len(missing)} of "
            f"{len(needed)} needed files missing). {_cifar10_instructions(folder.parent)}",
            searched=missing,
        )

    meta = read_cifar_pickle(folder / CIFAR10_META_FILE)
    if b"label_names" not in meta:
        raise InvalidDatasetFileError(
            f"{folder / CIFAR10_META_FILE} has no b'label_names' entry"
        )
    classes = [_decode_name(name) for name in meta[b"label_names"]]
    arrays = [_read_batch(folder / name) for name in CIFAR10_SPLIT_FILES[split]]
    data = np.concatenate([data for data, _ in arrays])
    labels = np.concatenate([labels for _, labels in arrays])
    images = torch.from_numpy(data).reshape(-1, 3, 32, 32)
    logger.info("Loaded %d CIFAR-10 %s images from %s", len(images), split, folder)
    return InMemoryImageDataset(
        images, torch.from_numpy(labels), classes, name=f"cifar10/{split}"
    )


def _decode_name(name: bytes | str) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _cifar10_instructions(root: Path) -> str:
    return (
        f"Download {CIFAR10_URL} and run `tar xzf cifar-10-python.tar.gz -C {root}` "
        f"(creates {root / CIFAR10_PICKLE_FOLDER}), or place an image folder at "
        f"{root}/<split>/<class>/<image>.png"
    )


def find_cifar10(root: str | os.PathLike[str], split: str) -> tuple[str, Path]:
    """Find CIFAR-10 under ``root`` in either supported format.

    Looks, in this order, for the pickle folder ``root/cifar-10-batches-py``,
    pickle batches directly in ``root``, and an image folder ``root/<split>``
    with one sub-folder per class.

    Args:
        root: Folder to search.
        split: ``"train"`` or ``"test"``.

    Returns:
        ``("pickle", folder)`` or ``("imagefolder", folder)``.

    Raises:
        DatasetNotFoundError: If none of the locations contains the data. The
            message lists them and explains how to obtain CIFAR-10.
    """
    root = Path(root).expanduser()
    candidates = [root / CIFAR10_PICKLE_FOLDER, root]
    for folder in candidates:
        if (folder / CIFAR10_META_FILE).is_file():
            return "pickle", folder
    image_root = root / split
    if image_root.is_dir():
        return "imagefolder", image_root
    searched = candidates + [image_root]
    raise DatasetNotFoundError(
        f"CIFAR-10 {split} split not found: looked for {CIFAR10_META_FILE} in "
        f"{candidates[0]} and {candidates[1]}, and for an image folder at "
        f"{image_root}. {_cifar10_instructions(root)}",
        searched=searched,
    )


def load_cifar10(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    num_threads: int | None = None,
    progress: bool = True,
) -> InMemoryImageDataset:
    """Load CIFAR-10 from ``root``, detecting the pickle or the image-folder format.

    See :func:`find_cifar10` for where it looks. An image folder must hold 32x32
    images and ten class sub-folders.

    Args:
        root: Folder that contains ``cifar-10-batches-py`` or ``train``/``test``
            image folders.
        split: ``"train"`` or ``"test"``.
        num_threads: Decoding threads for the image-folder format.
        progress: Show a progress bar while decoding an image folder.

    Returns:
        uint8 images of shape (N, 3, 32, 32) with labels 0..9.
    """
    if split not in CIFAR10_SPLIT_FILES:
        raise ValueError(
            f"Invalid CIFAR-10 split {split!r}; expected one of "
            f"{sorted(CIFAR10_SPLIT_FILES)}"
        )
    kind, folder = find_cifar10(root, split)
    if kind == "pickle":
        return load_cifar10_pickle(folder, split)
    dataset = load_image_folder(
        folder,
        channels=3,
        num_threads=num_threads,
        progress=progress,
        name=f"cifar10/{split}",
    )
    if dataset.num_classes != 10:
        logger.warning(
            "CIFAR-10 image folder %s has %d class folders, expected 10",
            folder,
            dataset.num_classes,
        )
    if dataset.image_shape[1:] != (32, 32):
        raise InvalidDatasetFileError(
            f"CIFAR-10 images in {folder} are {dataset.image_shape[1]}x"
            f"{dataset.image_shape[2]}, expected 32x32; load them with "
            "load_dataset('imagefolder', ...) instead"
        )
    return dataset
