"""scikit-learn digits, the in-memory dataset, load_dataset and normalisation stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from alignsphere.data import (
    DIGITS_NORMALIZATION,
    InMemoryImageDataset,
    Normalization,
    compute_normalization,
    list_datasets,
    load_dataset,
    load_digits_dataset,
)


def test_digits_split_sizes():
    train = load_digits_dataset("train")
    test = load_digits_dataset("test")
    assert len(train) == 1347
    assert len(test) == 450
    assert len(load_digits_dataset("all")) == 1797
    assert train.image_shape == (1, 8, 8)
    assert train.classes == [str(digit) for digit in range(10)]


def test_digits_split_is_stratified():
    test_counts = load_digits_dataset("test").labels.bincount()
    all_counts = torch.from_numpy(np.bincount(load_digits().target))
    expected = all_counts.double() * 0.25
    assert ((test_counts - expected).abs() <= 1).all()


def test_digits_split_is_fixed_and_disjoint():
    all_images = load_digits_dataset("all").images.flatten(1)
    train = load_digits_dataset("train")
    again = load_digits_dataset("train")
    assert torch.equal(train.images, again.images)
    assert torch.equal(train.labels, again.labels)
    test = load_digits_dataset("test")
    total = torch.cat([train.images.flatten(1), test.images.flatten(1)])
    # Same multiset of rows as the full set: every image is in exactly one split.
    assert torch.equal(total.sort(dim=0).values, all_images.sort(dim=0).values)


def test_digits_values_scaled_to_uint8():
    dataset = load_digits_dataset("all")
    raw = load_digits()
    assert dataset.images.dtype == torch.uint8
    assert int(dataset.images.max()) == 255
    expected = np.rint(raw.images[5] * 255 / 16).astype(np.uint8)
    assert torch.equal(dataset.images[5, 0], torch.from_numpy(expected))
    assert int(dataset.labels[5]) == raw.target[5]


def test_digits_normalization_matches_data():
    stats = compute_normalization(load_digits_dataset("train").images)
    assert stats.mean[0] == pytest.approx(DIGITS_NORMALIZATION.mean[0], abs=1e-4)
    assert stats.std[0] == pytest.approx(DIGITS_NORMALIZATION.std[0], abs=1e-4)


def test_compute_normalization_matches_numpy():
    images = torch.randint(0, 256, (10, 3, 4, 5), dtype=torch.uint8)
    stats = compute_normalization(images, batch_size=3)
    values = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, values.mean(axis=(0, 2, 3)), atol=1e-12)
    np.testing.assert_allclose(stats.std, values.std(axis=(0, 2, 3)), atol=1e-9)


def test_normalization_rejects_bad_values():
    with pytest.raises(ValueError, match="positive"):
        Normalization(mean=(0.5,), std=(0.0,))
    with pytest.raises(ValueError, match="one value per channel"):
        Normalization(mean=(0.5, 0.5), std=(0.2,))
    with pytest.raises(ValueError, match="3 channels"):
        Normalization((0.5,) * 3, (0.2,) * 3).apply(torch.zeros(1, 1, 2, 2))


def test_load_dataset_digits():
    dataset = load_dataset("digits", split="test")
    assert len(dataset) == 450
    assert dataset.num_classes == 10
    assert dataset.name == "digits/test"


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="digits, cifar10, stl10, imagefolder"):
        load_dataset("mnist")
    assert list_datasets() == ["digits", "cifar10", "stl10", "imagefolder"]


def test_load_dataset_invalid_split():
    with pytest.raises(ValueError, match="valid splits: train, test, all"):
        load_dataset("digits", split="validation")


def test_load_dataset_rejects_foreign_options():
    with pytest.raises(
        ValueError, match="image_size and channels apply to 'imagefolder'"
    ):
        load_dataset("digits", image_size=16)
    with pytest.raises(ValueError, match="fold applies to 'stl10' only"):
        load_dataset("cifar10", fold=1)


def test_load_dataset_missing_imagefolder_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass split=None"):
        load_dataset("imagefolder", root=tmp_path, split="val")


def test_memory_dataset_items_and_transform():
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 2, 2)
    dataset = InMemoryImageDataset(images, [1, 0], ["a", "b"])
    image, label = dataset[1]
    assert torch.equal(image, images[1])
    assert label == 0
    dataset.transform = lambda x: x.float() / 255
    assert dataset[0][0].dtype == torch.float32
    assert "size=2" in repr(dataset)


def test_memory_dataset_subset():
    images = torch.randint(0, 256, (5, 1, 3, 3), dtype=torch.uint8)
    dataset = InMemoryImageDataset(images, torch.arange(5) % 2, ["a", "b"], name="x")
    part = dataset.subset([4, 0])
    assert torch.equal(part.images, images[[4, 0]])
    assert part.labels.tolist() == [0, 0]
    assert part.classes == ["a", "b"]
    masked = dataset.subset(dataset.labels == 1)
    assert len(masked) == 2


def test_iter_batches_covers_every_image_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    dataset = InMemoryImageDataset(images, torch.zeros(10, dtype=torch.long), ["a"])
    generator = torch.Generator().manual_seed(0)
    batches = list(dataset.iter_batches(4, shuffle=True, generator=generator))
    assert [len(batch) for batch, _ in batches] == [4, 4, 2]
    seen = torch.cat([batch.flatten() for batch, _ in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert seen.tolist() != list(range(10))
    dropped = list(dataset.iter_batches(4, drop_last=True))
    assert [len(batch) for batch, _ in dropped] == [4, 4]
    with pytest.raises(ValueError, match="batch_size"):
        next(dataset.iter_batches(0))


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (torch.zeros(2, 3, 4, 4), [0, 0], "uint8"),
        (torch.zeros(2, 2, 4, 4, dtype=torch.uint8), [0, 0], "C = 1 or 3"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), [0], "shape \\(2,\\)"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), [0, 2], "labels must lie in"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), [0.0, 1.0], "integers"),
    ],
)
def test_memory_dataset_rejects_invalid_input(images, labels, message):
    with pytest.raises(ValueError, match=message):
        InMemoryImageDataset(images, torch.tensor(labels), ["a", "b"])
