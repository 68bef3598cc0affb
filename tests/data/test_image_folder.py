"""Image-folder decoding on real CIFAR-10 JPEGs and on broken or unusual files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alignsphere.data import (
    CIFAR10_NORMALIZATION,
    CorruptImageError,
    DatasetNotFoundError,
    compute_normalization,
    decode_image_file,
    list_image_folder,
    load_dataset,
    load_image_folder,
)

CIFAR10_CLASSES = [
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
# Images per class that the cifar10_jpg_root fixture unpacks.
CIFAR10_SUBSET = {"train": 30, "test": 10}


def write_image(path: Path, array: np.ndarray, **save_options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_options)
    return path


def test_cifar_jpg_folder_shapes(cifar10_jpg_root):
    train = load_image_folder(cifar10_jpg_root / "train", progress=False)
    per_class = CIFAR10_SUBSET["train"]
    assert train.images.shape == (10 * per_class, 3, 32, 32)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert train.classes == CIFAR10_CLASSES
    assert torch.equal(train.labels.bincount(), torch.full((10,), per_class))


def test_cifar_jpg_matches_pil(cifar10_jpg_root):
    folder = cifar10_jpg_root / "test"
    dataset = load_image_folder(folder, progress=False, num_threads=1)
    paths, labels, _ = list_image_folder(folder)
    for index in (0, 37, len(paths) - 1):
        expected = np.array(Image.open(paths[index]).convert("RGB"))
        assert torch.equal(
            dataset.images[index], torch.from_numpy(expected).permute(2, 0, 1)
        )
        assert int(dataset.labels[index]) == int(labels[index])
    # Real photos: not constant, and they use most of the value range.
    assert dataset.images.float().std() > 30
    assert dataset.images.max() > 200


def test_threads_match_sequential(cifar10_jpg_root):
    folder = cifar10_jpg_root / "test"
    sequential = load_image_folder(folder, progress=False, num_threads=1)
    threaded = load_image_folder(folder, progress=False, num_threads=3)
    assert torch.equal(sequential.images, threaded.images)
    assert torch.equal(sequential.labels, threaded.labels)


def test_load_dataset_detects_cifar_folder(cifar10_jpg_root):
    test = load_dataset("cifar10", root=cifar10_jpg_root, split="test", progress=False)
    assert len(test) == 10 * CIFAR10_SUBSET["test"]
    assert test.classes == CIFAR10_CLASSES
    assert test.name == "cifar10/test"


def test_load_dataset_imagefolder_split(cifar10_jpg_root):
    train = load_dataset(
        "imagefolder", root=cifar10_jpg_root, split="train", progress=False
    )
    assert len(train) == 10 * CIFAR10_SUBSET["train"]
    assert train.num_classes == 10


def test_imagefolder_resize_on_decode(cifar10_jpg_root):
    dataset = load_dataset(
        "imagefolder",
        root=cifar10_jpg_root,
        split="test",
        image_size=16,
        progress=False,
    )
    assert dataset.image_shape == (3, 16, 16)


def test_grayscale_jpeg_converted_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    write_image(tmp_path / "a" / "color.png", color)
    gray_path = write_image(tmp_path / "b" / "gray.jpg", gray, quality=95)
    assert Image.open(gray_path).mode == "L"

    dataset = load_image_folder(tmp_path, progress=False, num_threads=1)

    assert dataset.image_shape == (3, 12, 12)
    converted = dataset.images[1]
    assert torch.equal(converted[0], converted[1])
    assert torch.equal(converted[1], converted[2])
    decoded_gray = torch.from_numpy(np.array(Image.open(gray_path)))
    assert torch.equal(converted[0], decoded_gray)
    assert torch.equal(dataset.images[0], torch.from_numpy(color).permute(2, 0, 1))


def test_grayscale_folder_one_channel(tmp_path):
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_image(tmp_path / "x" / "digit.png", image)
    dataset = load_image_folder(tmp_path, channels=1, progress=False)
    assert dataset.image_shape == (1, 8, 8)
    assert torch.equal(dataset.images[0, 0], torch.from_numpy(image))


def test_truncated_jpeg_names_file(tmp_path, cifar10_jpg_root):
    source = sorted((cifar10_jpg_root / "test" / "cat").glob("*.jpg"))[0]
    good = tmp_path / "cat" / "good.jpg"
    good.parent.mkdir(parents=True)
    shutil.copy(source, good)
    data = source.read_bytes()
    broken = tmp_path / "cat" / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])

    with pytest.raises(CorruptImageError) as caught:
        load_image_folder(tmp_path, progress=False, num_threads=2)
    assert caught.value.path == broken
    assert str(broken) in str(caught.value)
    assert "truncated" in str(caught.value)


def test_empty_file_names_file(tmp_path):
    write_image(tmp_path / "a" / "ok.png", np.zeros((4, 4, 3), dtype=np.uint8))
    empty = tmp_path / "a" / "zero.png"
    empty.write_bytes(b"")
    with pytest.raises(CorruptImageError, match="zero.png: the file is empty"):
        load_image_folder(tmp_path, progress=False)


def test_not_an_image_names_file(tmp_path):
    fake = tmp_path / "a" / "notes.jpg"
    fake.parent.mkdir()
    fake.write_text("not a JPEG")
    with pytest.raises(CorruptImageError, match="notes.jpg"):
        decode_image_file(fake)


def test_mixed_sizes_need_image_size(tmp_path):
    write_image(tmp_path / "a" / "small.png", np.zeros((8, 8, 3), dtype=np.uint8))
    write_image(tmp_path / "b" / "large.png", np.zeros((10, 12, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="pass image_size"):
        load_image_folder(tmp_path, progress=False, num_threads=1)
    resized = load_image_folder(tmp_path, image_size=6, progress=False)
    assert resized.image_shape == (3, 6, 6)


def test_missing_folder_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as caught:
        load_image_folder(missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "<class>/<image>" in message
    assert caught.value.searched == [missing]
    assert isinstance(caught.value, FileNotFoundError)


def test_folder_without_images_error(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match="contains no image file"):
        load_image_folder(tmp_path)


def test_folder_without_classes_error(tmp_path):
    write_image(tmp_path / "loose.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(DatasetNotFoundError, match="no class sub-folder"):
        load_image_folder(tmp_path)


def test_empty_class_folder_keeps_label(tmp_path, caplog):
    write_image(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "b").mkdir()
    write_image(tmp_path / "c" / "y.png", np.zeros((4, 4, 3), dtype=np.uint8))
    dataset = load_image_folder(tmp_path, progress=False)
    assert dataset.classes == ["a", "b", "c"]
    assert dataset.labels.tolist() == [0, 2]
    assert "contain no image" in caplog.text


def test_hidden_and_other_files_skipped(tmp_path):
    write_image(tmp_path / "a" / "x.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "a" / "labels.csv").write_text("x,0")
    (tmp_path / ".cache").mkdir()
    paths, labels, classes = list_image_folder(tmp_path)
    assert [path.name for path in paths] == ["x.png"]
    assert classes == ["a"]
    assert labels.tolist() == [0]


def test_cifar_normalization_close_to_real_images(cifar10_jpg_root):
    train = load_image_folder(cifar10_jpg_root / "train", progress=False)
    stats = compute_normalization(train.images)
    for measured, stored in zip(stats.mean, CIFAR10_NORMALIZATION.mean, strict=True):
        assert abs(measured - stored) < 0.03
    for measured, stored in zip(stats.std, CIFAR10_NORMALIZATION.std, strict=True):
        assert abs(measured - stored) < 0.03
