"""STL-10 binary files, written by the tests in the release's exact layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from alignsphere.data import (
    UNLABELED,
    DatasetNotFoundError,
    InvalidDatasetFileError,
    load_dataset,
    load_stl10,
)

CLASSES = [
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
]
COUNTS = {"train": 6, "test": 4, "unlabeled": 5}


def make_images(count: int, seed: int) -> np.ndarray:
    """Random images in (N, 3, H, W) row-major order."""
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 96, 96), np.uint8)


def write_images(path: Path, images: np.ndarray) -> None:
    # The release stores each channel column-major: x varies slowest.
    images.transpose(0, 1, 3, 2).tofile(path)


@pytest.fixture
def stl_root(tmp_path) -> Path:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    for seed, (split, count) in enumerate(COUNTS.items()):
        write_images(folder / f"{split}_X.bin", make_images(count, seed))
        if split != "unlabeled":
            labels = np.arange(count, dtype=np.uint8) % 10 + 1
            labels.tofile(folder / f"{split}_y.bin")
    folds = [
        " ".join(str((fold + k) % COUNTS["train"]) for k in range(2))
        for fold in range(10)
    ]
    (folder / "fold_indices.txt").write_text("\n".join(folds) + "\n")
    return tmp_path


def test_train_images_and_labels(stl_root):
    dataset = load_stl10(stl_root, "train")
    assert dataset.images.shape == (COUNTS["train"], 3, 96, 96)
    assert torch.equal(
        dataset.images, torch.from_numpy(make_images(COUNTS["train"], 0))
    )
    # Labels 1..10 on disk become 0..9.
    assert dataset.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert dataset.classes == CLASSES


def test_column_major_orientation(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "class_names.txt").write_text("\n".join(CLASSES))
    # Byte c * 96 * 96 + x * 96 + y contains channel c at column x, row y. Light up
    # the top row (y = 0) of the red channel and one green pixel at row 5, col 2.
    raw = np.zeros(3 * 96 * 96, dtype=np.uint8)
    raw[[x * 96 for x in range(96)]] = 255
    raw[96 * 96 + 2 * 96 + 5] = 7
    raw.tofile(folder / "test_X.bin")
    np.array([3], dtype=np.uint8).tofile(folder / "test_y.bin")
    dataset = load_stl10(tmp_path, "test")
    assert dataset.images[0, 0, 0].eq(255).all()
    assert dataset.images[0, 0, 1:].eq(0).all()
    assert int(dataset.images[0, 1, 5, 2]) == 7
    assert int(dataset.images[0, 1].sum()) == 7
    assert dataset.labels.tolist() == [2]


def test_test_split(stl_root):
    dataset = load_dataset("stl10", root=stl_root, split="test")
    assert torch.equal(dataset.images, torch.from_numpy(make_images(COUNTS["test"], 1)))
    assert dataset.name == "stl10/test"


def test_unlabeled_split(stl_root):
    dataset = load_stl10(stl_root, "unlabeled")
    assert len(dataset) == COUNTS["unlabeled"]
    assert dataset.labels.eq(UNLABELED).all()
    assert not dataset.is_labeled
    assert dataset.num_classes == 10


def test_train_plus_unlabeled(stl_root):
    dataset = load_stl10(stl_root, "train+unlabeled")
    train = load_stl10(stl_root, "train")
    unlabeled = load_stl10(stl_root, "unlabeled")
    assert len(dataset) == COUNTS["train"] + COUNTS["unlabeled"]
    assert torch.equal(dataset.images[: len(train)], train.images)
    assert torch.equal(dataset.images[len(train) :], unlabeled.images)
    assert torch.equal(dataset.labels[: len(train)], train.labels)
    assert dataset.labels[len(train) :].eq(UNLABELED).all()


def test_train_fold(stl_root):
    full = load_stl10(stl_root, "train")
    fold = load_stl10(stl_root, "train", fold=3)
    assert len(fold) == 2
    assert torch.equal(fold.images, full.images[[3, 4]])
    assert torch.equal(fold.labels, full.labels[[3, 4]])


def test_fold_needs_train_split(stl_root):
    with pytest.raises(ValueError, match="folds 0..9 exist for the train split only"):
        load_stl10(stl_root, "test", fold=0)
    with pytest.raises(ValueError, match="fold=10 is invalid"):
        load_stl10(stl_root, "train", fold=10)


def test_root_may_be_binary_folder(stl_root):
    dataset = load_stl10(stl_root / "stl10_binary", "test")
    assert len(dataset) == COUNTS["test"]


def test_missing_stl10_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("stl10", root=tmp_path, split="train")
    message = str(caught.value)
    assert "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz" in message
    assert f"tar xzf stl10_binary.tar.gz -C {tmp_path}" in message
    assert str(tmp_path / "stl10_binary") in message


def test_missing_unlabeled_file_named(stl_root):
    (stl_root / "stl10_binary" / "unlabeled_X.bin").unlink()
    assert len(load_stl10(stl_root, "train")) == COUNTS["train"]
    with pytest.raises(DatasetNotFoundError, match="unlabeled_X.bin"):
        load_stl10(stl_root, "train+unlabeled")


def test_truncated_image_file_rejected(stl_root):
    path = stl_root / "stl10_binary" / "test_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidDatasetFileError, match="truncated"):
        load_stl10(stl_root, "test")


def test_label_out_of_range_rejected(stl_root):
    np.array([1, 2, 11, 0], dtype=np.uint8).tofile(
        stl_root / "stl10_binary" / "test_y.bin"
    )
    with pytest.raises(InvalidDatasetFileError, match="expected 1..10"):
        load_stl10(stl_root, "test")


def test_label_count_mismatch_rejected(stl_root):
    np.array([1, 2], dtype=np.uint8).tofile(stl_root / "stl10_binary" / "test_y.bin")
    with pytest.raises(InvalidDatasetFileError, match="4 images but"):
        load_stl10(stl_root, "test")


def test_invalid_split_lists_valid_ones(stl_root):
    with pytest.raises(ValueError, match="train\\+unlabeled"):
        load_dataset("stl10", root=stl_root, split="val")
