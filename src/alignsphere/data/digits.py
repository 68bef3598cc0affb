"""scikit-learn's handwritten digits: the embedded dataset that needs no download."""

from __future__ import annotations

import numpy as np
import torch

from alignsphere.data.memory import InMemoryImageDataset

#: Fraction of the 1,797 digits held out as the test split.
DIGITS_TEST_FRACTION = 0.25
#: Seed of the stratified train/test split, fixed so every run gets the same split.
DIGITS_SPLIT_SEED = 0
#: Largest pixel value in scikit-learn's digits (4x4 blocks of a 32x32 bitmap).
DIGITS_MAX_VALUE = 16


def load_digits_dataset(split: str = "train") -> InMemoryImageDataset:
    """Load scikit-learn's 8x8 digits as uint8 grayscale images.

    The 1,797 images (classes "0" to "9") ship inside scikit-learn, so this needs
    no file and no network. Pixel values 0..16 are scaled to 0..255 and rounded.
    The split is stratified by class, with 25 % held out and ``random_state=0``
    in :func:`sklearn.model_selection.train_test_split`: 1,347 train and 450 test
    images on every machine.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``. Defaults to ``"train"``.

    Returns:
        A dataset of uint8 images of shape (N, 1, 8, 8) and labels 0..9.

    Raises:
        ValueError: If ``split`` is not one of the names above.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(
            f"Invalid digits split {split!r}; expected 'train', 'test' or 'all'"
        )
    bunch = load_digits()
    scaled = np.rint(bunch.images * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)
    images = torch.from_numpy(scaled).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    classes = [str(digit) for digit in range(10)]
    if split == "all":
        return InMemoryImageDataset(images, labels, classes, name="digits/all")

    train_index, test_index = train_test_split(
        np.arange(len(labels)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=bunch.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    index = torch.from_numpy(train_index if split == "train" else test_index)
    return InMemoryImageDataset(
        images[index].contiguous(), labels[index], classes, name=f"digits/{split}"
    )
