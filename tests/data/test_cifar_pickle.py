"""CIFAR-10 python batches, written by the tests in the official pickle format."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from alignsphere.data import (
    DatasetNotFoundError,
    InvalidDatasetFileError,
    find_cifar10,
    load_cifar10_pickle,
    load_dataset,
)
from alignsphere.data.cifar import read_cifar_pickle

CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
IMAGES_PER_BATCH = 4


def make_batch(seed: int, count: int = IMAGES_PER_BATCH) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"labels": [int(label) for label in rng.integers(0, 10, count)],
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"image_{seed}_{index}.png".encode() for index in range(count)],
    }


def write_pickle(path: Path, content: object) -> None:
    with open(path, "wb") as file:
        # Protocol 2, as the official files (written by Python 2), bytes keys.
        pickle.dump(content, file, protocol=2)


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(
        folder / "batches.meta",
        {
            b"label_names": [name.encode() for name in CLASSES],
            b"num_cases_per_batch": IMAGES_PER_BATCH,
            b"num_vis": 3072,
        },
    )
    for index in range(1, 6):
        write_pickle(folder / f"data_batch_{index}", make_batch(index))
    write_pickle(folder / "test_batch", make_batch(100))
    return tmp_path


def test_train_split_concatenates_batches(cifar_root):
    dataset = load_cifar10_pickle(cifar_root / "cifar-10-batches-py", "train")
    assert dataset.images.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert dataset.images.dtype == torch.uint8
    assert dataset.classes == CLASSES
    expected_labels = sum((make_batch(index)[b"labels"] for index in range(1, 6)), [])
    assert dataset.labels.tolist() == expected_labels


def test_rows_are_channel_planes(cifar_root):
    dataset = load_cifar10_pickle(cifar_root / "cifar-10-batches-py", "test")
    row = make_batch(100)[b"data"][1]
    image = dataset.images[1]
    # Row layout: 1024 red values, then green, then blue, each row-major 32x32.
    assert int(image[0, 0, 0]) == row[0]
    assert int(image[0, 0, 1]) == row[1]
    assert int(image[0, 1, 0]) == row[32]
    assert int(image[1, 0, 0]) == row[1024]
    assert int(image[2, 31, 31]) == row[3071]


def test_load_dataset_prefers_pickle(cifar_root):
    (cifar_root / "test" / "cat").mkdir(parents=True)
    kind, folder = find_cifar10(cifar_root, "test")
    assert kind == "pickle"
    assert folder == cifar_root / "cifar-10-batches-py"
    dataset = load_dataset("cifar10", root=cifar_root, split="test")
    assert len(dataset) == IMAGES_PER_BATCH
    assert dataset.name == "cifar10/test"


def test_batches_directly_in_root(cifar_root):
    folder = cifar_root / "cifar-10-batches-py"
    dataset = load_dataset("cifar10", root=folder, split="train")
    assert len(dataset) == 5 * IMAGES_PER_BATCH


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("cifar10", root=tmp_path, split="train")
    message = str(caught.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert f"tar xzf cifar-10-python.tar.gz -C {tmp_path}" in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert str(tmp_path / "train") in message
    assert "\n" not in message


def test_missing_batch_named(cifar_root):
    missing = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_3"):
        load_dataset("cifar10", root=cifar_root, split="train")
    # The test split does not need that file.
    assert len(load_dataset("cifar10", root=cifar_root, split="test")) == 4


def test_wrong_row_size_rejected(cifar_root):
    batch = make_batch(7)
    batch[b"data"] = batch[b"data"][:, :3000]
    write_pickle(cifar_root / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(InvalidDatasetFileError, match=r"shape \(N, 3072\)"):
        load_dataset("cifar10", root=cifar_root, split="test")


def test_label_count_mismatch_rejected(cifar_root):
    batch = make_batch(7)
    batch[b"labels"] = batch[b"labels"][:-1]
    write_pickle(cifar_root / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(InvalidDatasetFileError, match="4 images but 3 labels"):
        load_dataset("cifar10", root=cifar_root, split="test")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_pickle_with_code_rejected(tmp_path):
    path = tmp_path / "test_batch"
    write_pickle(path, {b"data": RunsCode(), b"labels": []})
    with pytest.raises(InvalidDatasetFileError, match="is not allowed"):
        read_cifar_pickle(path)


def test_not_a_pickle_rejected(tmp_path):
    path = tmp_path / "batches.meta"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(InvalidDatasetFileError, match="not a valid CIFAR"):
        read_cifar_pickle(path)


def test_python3_pickle_protocol_accepted(tmp_path):
    path = tmp_path / "batch"
    batch = make_batch(3)
    with open(path, "wb") as file:
        pickle.dump(batch, file, protocol=pickle.HIGHEST_PROTOCOL)
    content = read_cifar_pickle(path)
    np.testing.assert_array_equal(content[b"data"], batch[b"data"])
