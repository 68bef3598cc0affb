"""Decode a class-per-sub-folder image folder into memory."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from alignsphere.data.errors import (
    CorruptImageError,
    DatasetNotFoundError,
    InvalidDatasetFileError,
)
from alignsphere.data.memory import InMemoryImageDataset

logger = logging.getLogger(__name__)

#: File extensions read as images, the same list as torchvision's ImageFolder.
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)

# Images per task handed to a decoding thread: large enough to amortise the
# scheduling cost of a future, small enough to keep the progress bar moving.
_CHUNK_SIZE = 256


def image_folder_layout(root: Path) -> str:
    """Describe the expected layout of an image folder, for error messages."""
    return (
        f"{root}/<class>/<image> with one sub-folder per class and images ending in "
        f"{', '.join(IMAGE_EXTENSIONS)} (torchvision.datasets.ImageFolder layout)"
    )


def list_image_folder(
    root: str | os.PathLike[str],
) -> tuple[list[Path], Tensor, list[str]]:
    """List the image files of a class-per-sub-folder image folder.

    Classes are the sub-folder names in sorted order and files are sorted by path
    within each class. For class folders without nested folders, labels and order
    are the same as torchvision's ImageFolder. Images in nested folders are
    included. Hidden files and files with other extensions are skipped.

    Args:
        root: Folder that contains one sub-folder per class.

    Returns:
        The image paths, their int64 labels of shape (N,), and the class names.

    Raises:
        DatasetNotFoundError: If ``root`` is not a folder, has no class
            sub-folder, or contains no image file at all.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Image folder {root} not found. Expected {image_folder_layout(root)}.",
            searched=[root],
        )
    classes = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not classes:
        raise DatasetNotFoundError(
            f"Image folder {root} has no class sub-folder. "
            f"Expected {image_folder_layout(root)}.",
            searched=[root],
        )
    paths: list[Path] = []
    labels: list[int] = []
    empty_classes = []
    for label, name in enumerate(classes):
        files = sorted(
            path
            for path in (root / name).rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS
            and not path.name.startswith(".")
            and path.is_file()
        )
        if not files:
            empty_classes.append(name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DatasetNotFoundError(
            f"Image folder {root} contains no image file. "
            f"Expected {image_folder_layout(root)}.",
            searched=[root],
        )
    if empty_classes:
        logger.warning(
            "Image folder %s: %d class folders contain no image and keep their "
            "label without examples: %s",
            root,
            len(empty_classes),
            ", ".join(empty_classes),
        )
    return paths, torch.tensor(labels, dtype=torch.int64), classes


def decode_image_file(
    path: str | os.PathLike[str], channels: int = 3, image_size: int | None = None
) -> np.ndarray:
    """Decode one image file to a uint8 array of shape (C, H, W).

    Grayscale, palette and RGBA images are converted with PIL's ``convert`` to
    RGB (``channels=3``, the gray value repeated, alpha dropped) or to luminance
    (``channels=1``).

    Args:
        path: Image file.
        channels: 3 for RGB, 1 for grayscale.
        image_size: If given, resize the shorter side to this many pixels
            (bilinear with antialiasing) and center-crop a square of that size.

    Returns:
        uint8 array of shape (channels, H, W).

    Raises:
        CorruptImageError: If PIL cannot open or fully decode the file (empty,
            truncated or not an image). PIL raises on a truncated file only while
            ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False, its default.
    """
    from torchvision.transforms.v2 import functional as TF

    mode = {1: "L", 3: "RGB"}[channels]
    try:
        with Image.open(path) as image:
            image.load()
            converted = image.convert(mode) if image.mode != mode else image.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = "the file is empty" if _is_empty(path) else str(error)
        raise CorruptImageError(path, reason) from error
    if image_size is not None:
        converted = TF.resize(converted, image_size)
        converted = TF.center_crop(converted, [image_size, image_size])
    # np.array copies, so the result is writable (np.asarray of a PIL image is not).
    array = np.array(converted, dtype=np.uint8)
    if array.ndim == 2:
        return array[None]
    return array.transpose(2, 0, 1)


def _is_empty(path: str | os.PathLike[str]) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def decode_images(
    paths: list[Path],
    *,
    channels: int = 3,
    image_size: int | None = None,
    num_threads: int | None = None,
    progress: bool = True,
    description: str = "Decoding images",
) -> Tensor:
    """Decode image files into one uint8 tensor of shape (N, C, H, W).

    Args:
        paths: Image files, at least one.
        channels: 3 for RGB, 1 for grayscale.
        image_size: Resize and center-crop every image to this square size. When
            None, all images must already have the size of the first one.
        num_threads: Decoding threads. PIL releases the GIL while it decodes, so
            threads speed this up. Defaults to ``min(8, os.cpu_count())``; 0 or 1
            decodes in the calling thread.
        progress: Show a tqdm progress bar.
        description: Label of the progress bar.

    Returns:
        uint8 tensor of shape (len(paths), channels, H, W).

    Raises:
        CorruptImageError: On a file that cannot be decoded; the message names it.
        ValueError: If ``image_size`` is None and two images differ in size.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not paths:
        raise ValueError("paths is empty; there is no image to decode")
    if num_threads is None:
        num_threads = min(8, os.cpu_count() or 1)

    first = decode_image_file(paths[0], channels, image_size)
    images = torch.empty((len(paths), *first.shape), dtype=torch.uint8)
    images[0] = torch.from_numpy(first)
    bar = tqdm(total=len(paths), desc=description, unit="img", disable=not progress)
    bar.update(1)
    lock = threading.Lock()

    def decode_range(start: int, stop: int) -> None:
        for index in range(start, stop):
            array = decode_image_file(paths[index], channels, image_size)
            if array.shape != first.shape:
                raise InvalidDatasetFileError(
                    f"Image {paths[index]} has shape {array.shape} (C, H, W) but "
                    f"{paths[0]} has {first.shape}; pass image_size (in a training "
                    "config data.decode_size, such as --set data.decode_size=32) to "
                    "resize and center-crop all images to one square size"
                )
            images[index] = torch.from_numpy(array)
        with lock:
            bar.update(stop - start)

    ranges = [
        (start, min(start + _CHUNK_SIZE, len(paths)))
        for start in range(1, len(paths), _CHUNK_SIZE)
    ]
    try:
        if num_threads <= 1:
            for start, stop in ranges:
                decode_range(start, stop)
        else:
            _decode_in_threads(decode_range, ranges, num_threads)
    finally:
        bar.close()
    return images


def _decode_in_threads(decode_range, ranges: list[tuple[int, int]], num_threads: int):
    executor = ThreadPoolExecutor(max_workers=num_threads)
    try:
        futures = [executor.submit(decode_range, *bounds) for bounds in ranges]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                raise error
    finally:
        # On an error, skip the chunks that have not started instead of
        # decoding the rest of a large folder before raising.
        executor.shutdown(wait=True, cancel_futures=True)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    channels: int = 3,
    image_size: int | None = None,
    num_threads: int | None = None,
    progress: bool = True,
    name: str | None = None,
) -> InMemoryImageDataset:
    """Decode a class-per-sub-folder image folder into an in-memory dataset.

    The layout, class order and label assignment follow torchvision's
    ImageFolder: ``root/<class>/<image>``, classes sorted by name. Every image is
    decoded once, with several threads and a progress bar, and stored as uint8.
    That suits sets that fit in memory, such as CIFAR-10 (60,000 x 3 x 32 x 32
    bytes, 184 MB). Pass ``image_size`` to shrink larger images as they are
    decoded.

    Args:
        root: Folder with one sub-folder per class.
        channels: 3 (RGB, the default; grayscale images are converted to RGB) or 1.
        image_size: Resize the shorter side to this size and center-crop a square.
            Required when the images differ in size.
        num_threads: Decoding threads; see :func:`decode_images`.
        progress: Show a tqdm progress bar.
        name: Dataset name for logs; defaults to the folder name.

    Returns:
        The decoded dataset, with ``classes`` set to the sub-folder names.

    Raises:
        DatasetNotFoundError: If the folder is missing or contains no image.
        CorruptImageError: If an image file cannot be decoded; names the file.
        ValueError: If images differ in size and ``image_size`` is None.
    """
    root = Path(root).expanduser()
    paths, labels, classes = list_image_folder(root)
    dataset_name = name or root.name
    logger.info(
        "Decoding %d images of %d classes from %s", len(paths), len(classes), root
    )
    images = decode_images(
        paths,
        channels=channels,
        image_size=image_size,
        num_threads=num_threads,
        progress=progress,
        description=f"Decoding {dataset_name}",
    )
    return InMemoryImageDataset(images, labels, classes, name=dataset_name)
