"""Presets, evaluation transforms, the PIL reference pipeline and two-view datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from alignsphere.data import (
    STL10_NORMALIZATION,
    AugmentationPreset,
    DatasetNotFoundError,
    EvalConfig,
    EvalTransform,
    InMemoryImageDataset,
    TwoViewDataset,
    TwoViewPILDataset,
    build_pil_eval_transform,
    build_pil_train_transform,
    get_preset,
    list_presets,
    register_preset,
    tensor_to_pil,
)


def test_preset_names():
    assert list_presets() == ["cifar10", "digits", "imagenet", "stl10"]


def test_unknown_preset_lists_names():
    with pytest.raises(ValueError, match="cifar10, digits, imagenet, stl10"):
        get_preset("svhn")


def test_stl10_preset_matches_reference():
    preset = get_preset("stl10")
    assert preset.image_size == (64, 64)
    assert preset.train.scale == (0.08, 1.0)
    assert preset.train.hflip_p == 0.5
    jitter = preset.train.color_jitter
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.4,
        0.4,
    )
    assert jitter.p == 1.0
    assert preset.train.grayscale_p == 0.2
    assert preset.eval == EvalConfig(resize=70, crop=64)
    assert preset.probe.color_jitter is None
    assert preset.normalization == STL10_NORMALIZATION


def test_cifar10_preset_values():
    preset = get_preset("cifar10")
    jitter = preset.train.color_jitter
    assert preset.image_size == (32, 32)
    assert preset.train.scale == (0.2, 1.0)
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert jitter.p == 0.8
    assert preset.train.grayscale_p == 0.2


def test_digits_preset_is_grayscale_without_flip():
    preset = get_preset("digits")
    assert preset.in_channels == 1
    assert preset.normalization.channels == 1
    assert preset.train.hflip_p == 0.0
    assert preset.probe.hflip_p == 0.0
    assert preset.image_size == (8, 8)


def test_register_preset_rejects_duplicate():
    preset = get_preset("cifar10")
    with pytest.raises(ValueError, match="already exists"):
        register_preset(preset)
    custom = AugmentationPreset(
        name="test-custom",
        description="test",
        train=preset.train,
        probe=preset.probe,
        eval=preset.eval,
        normalization=preset.normalization,
    )
    register_preset(custom)
    try:
        assert get_preset("test-custom") is custom
    finally:
        from alignsphere.data.presets import PRESETS

        del PRESETS["test-custom"]


def test_stl10_eval_transform_shape_and_values():
    transform = get_preset("stl10").eval_transform()
    images = torch.randint(0, 256, (4, 3, 96, 96), dtype=torch.uint8)
    out = transform(images)
    assert out.shape == (4, 3, 64, 64)
    expected = TF.center_crop(
        TF.resize(images.float() / 255, [70], antialias=True).clamp(0, 1), [64, 64]
    )
    torch.testing.assert_close(out, STL10_NORMALIZATION.apply(expected))


def test_eval_transform_close_to_pil_pipeline():
    preset = get_preset("stl10")
    image = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (3, 96, 96), dtype=np.uint8)
    )
    # Smooth the random image so that resampling differences stay small.
    image = TF.gaussian_blur(image, [9, 9], [3.0, 3.0])
    batched = EvalTransform(preset.eval)(image)
    reference = build_pil_eval_transform(preset.eval)(tensor_to_pil(image))
    assert batched.shape == reference.shape == (3, 64, 64)
    assert (batched - reference).abs().mean() < 2 / 255


def test_eval_transform_without_resize_only_normalizes():
    preset = get_preset("cifar10")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = preset.eval_transform()(images)
    torch.testing.assert_close(out, preset.normalization.apply(images.float() / 255))


@pytest.mark.parametrize("name", ["stl10", "cifar10", "digits", "imagenet"])
def test_pil_train_transform_shapes(name):
    preset = get_preset(name)
    size = {"stl10": 96, "cifar10": 32, "digits": 8, "imagenet": 256}[name]
    image = torch.randint(0, 256, (preset.in_channels, size, size), dtype=torch.uint8)
    transform = build_pil_train_transform(preset.train, preset.normalization)
    out = transform(tensor_to_pil(image))
    assert out.shape == (preset.in_channels, *preset.image_size)
    assert out.dtype == torch.float32


def test_pil_and_batched_pipelines_agree_in_distribution():
    # Same settings, different code paths: the mean and spread of the augmented
    # pixels of one image over many draws should agree.
    preset = get_preset("cifar10")
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8))
    image = TF.gaussian_blur(image, [5, 5], [1.5, 1.5])
    draws = 200
    batched = preset.train_augmentation()(
        image.expand(draws, -1, -1, -1), torch.Generator().manual_seed(0)
    )
    pil_transform = build_pil_train_transform(preset.train, preset.normalization)
    torch.manual_seed(0)
    pil_image = tensor_to_pil(image)
    reference = torch.stack([pil_transform(pil_image) for _ in range(draws)])
    assert abs(batched.mean() - reference.mean()) < 0.1
    assert abs(batched.std() - reference.std()) < 0.1
    per_channel = batched.mean(dim=(0, 2, 3)) - reference.mean(dim=(0, 2, 3))
    assert per_channel.abs().max() < 0.15
    # Average contrast within one view, sensitive to crop scale and jitter.
    contrast = batched.std(dim=(1, 2, 3)).mean()
    reference_contrast = reference.std(dim=(1, 2, 3)).mean()
    assert abs(contrast - reference_contrast) < 0.03


def test_tensor_to_pil_modes():
    rgb = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    gray = torch.randint(0, 256, (1, 5, 7), dtype=torch.uint8)
    assert tensor_to_pil(rgb).mode == "RGB"
    assert tensor_to_pil(gray).mode == "L"
    assert tensor_to_pil(rgb).size == (7, 5)
    assert torch.equal(TF.pil_to_tensor(tensor_to_pil(rgb)), rgb)
    with pytest.raises(ValueError, match="uint8 tensor"):
        tensor_to_pil(rgb.float())


def small_dataset() -> InMemoryImageDataset:
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    return InMemoryImageDataset(images, torch.arange(6) % 2, ["even", "odd"])


def test_two_view_pil_dataset_in_memory():
    preset = get_preset("cifar10")
    transform = build_pil_train_transform(preset.train, preset.normalization)
    dataset = TwoViewPILDataset(small_dataset(), transform)
    assert len(dataset) == 6
    assert dataset.classes == ["even", "odd"]
    torch.manual_seed(0)
    view1, view2, label = dataset[3]
    assert view1.shape == view2.shape == (3, 32, 32)
    assert not torch.equal(view1, view2)
    assert label == 1


def test_two_view_pil_dataset_image_folder(tmp_path):
    for label in ("a", "b"):
        for index in range(2):
            path = tmp_path / label / f"{index}.png"
            path.parent.mkdir(exist_ok=True)
            array = np.full((20, 20, 3), 40 * index + 10, dtype=np.uint8)
            array[:, :10] = 200
            Image.fromarray(array).save(path)
    preset = get_preset("cifar10")
    dataset = TwoViewPILDataset(tmp_path, build_pil_train_transform(preset.train))
    loader = DataLoader(dataset, batch_size=4)
    view1, view2, labels = next(iter(loader))
    assert view1.shape == (4, 3, 32, 32)
    assert view2.shape == (4, 3, 32, 32)
    assert labels.tolist() == [0, 0, 1, 1]
    assert dataset.classes == ["a", "b"]


def test_two_view_pil_dataset_missing_folder(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="<class>/<image>"):
        TwoViewPILDataset(tmp_path / "missing", lambda image: image)


def test_two_view_dataset_with_batch_augmentation():
    augment = get_preset("cifar10").train_augmentation()
    dataset = TwoViewDataset(small_dataset(), augment)
    view1, view2, label = dataset[0]
    assert view1.shape == (3, 32, 32)
    assert not torch.equal(view1, view2)
    assert label == 0
