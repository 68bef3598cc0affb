"""BatchAugmentation: parameters drawn per sample, reproducible with a seed."""

from __future__ import annotations

import math

import pytest
import torch

from alignsphere.data import (
    AugmentationConfig,
    BatchAugmentation,
    ColorJitterConfig,
    GaussianBlurConfig,
    Normalization,
    get_preset,
    sample_crop_boxes,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(count: int, size: int = 32, channels: int = 3, seed: int = 0):
    return torch.randint(
        0, 256, (count, channels, size, size), dtype=torch.uint8, generator=seeded(seed)
    )


def test_repeated_image_gets_different_views():
    augment = get_preset("cifar10").train_augmentation()
    batch = random_images(1).expand(16, -1, -1, -1)
    out = augment(batch, seeded(0))
    assert out.shape == (16, 3, 32, 32)
    assert out.dtype == torch.float32
    flat = out.flatten(1)
    distances = torch.cdist(flat, flat)
    off_diagonal = distances[~torch.eye(16, dtype=torch.bool)]
    assert off_diagonal.min() > 1.0


def test_crop_parameters_differ_per_image():
    augment = get_preset("stl10").train_augmentation()
    params = augment.sample_params(64, (96, 96), seeded(0))
    assert params.boxes.unique(dim=0).shape[0] == 64
    assert 0 < params.flip.sum() < 64
    assert params.jitter_factors[:, 0].unique().numel() == 64


def test_same_seed_same_output():
    augment = get_preset("stl10").train_augmentation()
    images = random_images(8, size=96)
    first = augment(images, seeded(123))
    second = augment(images, seeded(123))
    assert torch.equal(first, second)


def test_different_seed_different_output():
    augment = get_preset("stl10").train_augmentation()
    images = random_images(8, size=96)
    assert not torch.equal(augment(images, seeded(1)), augment(images, seeded(2)))


def test_two_views_are_independent():
    augment = get_preset("cifar10").train_augmentation()
    images = random_images(8)
    generator = seeded(0)
    view1, view2 = augment.two_views(images, generator)
    assert view1.shape == view2.shape == (8, 3, 32, 32)
    per_image = (view1 - view2).flatten(1).abs().mean(dim=1)
    assert (per_image > 0.05).all()


def test_global_generator_when_none():
    augment = get_preset("cifar10").train_augmentation()
    images = random_images(4)
    torch.manual_seed(5)
    first = augment(images)
    torch.manual_seed(5)
    assert torch.equal(first, augment(images))


def test_flip_only_gives_image_or_mirror():
    config = AugmentationConfig(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    augment = BatchAugmentation(config)
    images = random_images(64)
    params = augment.sample_params(64, (32, 32), seeded(0))
    out = augment.apply(images, params)
    expected = images.float() / 255
    mirrored = expected.flip(-1)
    flipped = params.flip.view(-1, 1, 1, 1)
    torch.testing.assert_close(
        out, torch.where(flipped, mirrored, expected), atol=1e-5, rtol=0
    )
    assert 10 < int(params.flip.sum()) < 54


def test_crop_boxes_within_image_and_scale():
    boxes = sample_crop_boxes(4000, (40, 60), (0.08, 1.0), (3 / 4, 4 / 3), seeded(0))
    left, top, width, height = boxes.unbind(1)
    assert (left >= 0).all()
    assert (top >= 0).all()
    assert (left + width <= 60 + 1e-9).all()
    assert (top + height <= 40 + 1e-9).all()
    area = width * height / (40 * 60)
    ratio = width / height
    assert ((area >= 0.08 - 1e-9) & (area <= 1 + 1e-9)).all()
    assert ((ratio >= 3 / 4 - 1e-9) & (ratio <= 4 / 3 + 1e-9)).all()


def test_crop_ratio_symmetric_on_square_images():
    boxes = sample_crop_boxes(4000, (50, 50), (0.08, 1.0), (3 / 4, 4 / 3), seeded(0))
    ratio = boxes[:, 2] / boxes[:, 3]
    # Log-uniform aspect ratio: about half the boxes are wider than tall.
    assert abs((ratio > 1).float().mean().item() - 0.5) < 0.05


def test_crop_area_distribution_matches_torchvision():
    # Large elongated draws do not fit and are redrawn, which lowers the mean
    # area below the 0.54 of uniform draws in [0.08, 1]. torchvision does the same.
    from torchvision.transforms import RandomResizedCrop

    count = 10000
    boxes = sample_crop_boxes(count, (50, 50), (0.08, 1.0), (3 / 4, 4 / 3), seeded(0))
    area = boxes[:, 2] * boxes[:, 3] / 2500
    torch.manual_seed(0)
    image = torch.zeros(1, 50, 50)
    reference = torch.tensor(
        [
            RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3])[2:]
            for _ in range(count)
        ],
        dtype=torch.float64,
    )
    reference_area = reference[:, 0] * reference[:, 1] / 2500
    assert abs(area.mean() - reference_area.mean()) < 0.015
    assert abs(area.std() - reference_area.std()) < 0.015


def test_crop_fallback_is_center_crop():
    # No box with area >= 0.99 and ratio >= 3 fits in a square image.
    boxes = sample_crop_boxes(5, (20, 20), (0.99, 1.0), (3.0, 4.0), seeded(0))
    expected = torch.tensor([0.0, 20 - 20 / 3, 20.0, 20 / 3]) * torch.tensor(
        [1, 0.5, 1, 1]
    )
    torch.testing.assert_close(boxes, expected.double().expand(5, 4))


def test_jitter_probability_per_image():
    config = AugmentationConfig(
        size=8, color_jitter=ColorJitterConfig(brightness=0.4, p=0.8)
    )
    params = BatchAugmentation(config).sample_params(4000, (8, 8), seeded(0))
    assert abs(params.jitter.float().mean().item() - 0.8) < 0.03
    factors = params.jitter_factors[:, 0]
    assert factors.min() >= 0.6
    assert factors.max() <= 1.4


def test_jitter_random_order_per_image():
    config = AugmentationConfig(
        size=8, color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.1)
    )
    params = BatchAugmentation(config).sample_params(500, (8, 8), seeded(0))
    orders = {tuple(row) for row in params.jitter_order.tolist()}
    assert len(orders) == math.factorial(4)
    fixed = AugmentationConfig(
        size=8, color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.1, random_order=False)
    )
    params = BatchAugmentation(fixed).sample_params(50, (8, 8), seeded(0))
    assert (params.jitter_order == torch.arange(4)).all()


def test_jitter_order_matters_and_is_applied():
    config = AugmentationConfig(
        size=16,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        hflip_p=0.0,
        color_jitter=ColorJitterConfig(brightness=0.8, contrast=0.8),
    )
    augment = BatchAugmentation(config)
    image = random_images(1, size=16)
    params = augment.sample_params(2, (16, 16), seeded(0))
    params.jitter_factors[:, :2] = torch.tensor([1.7, 0.3], dtype=torch.float64)
    params.jitter_order[0] = torch.tensor([0, 1, 2, 3])
    params.jitter_order[1] = torch.tensor([1, 0, 2, 3])
    out = augment.apply(image.expand(2, -1, -1, -1), params)
    x = image[0].float() / 255
    bright = (x * 1.7).clamp(0, 1)
    bright_then_contrast = (0.3 * bright + 0.7 * gray_mean(bright)).clamp(0, 1)
    contrast = (0.3 * x + 0.7 * gray_mean(x)).clamp(0, 1)
    contrast_then_bright = (contrast * 1.7).clamp(0, 1)
    torch.testing.assert_close(out[0], bright_then_contrast, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], contrast_then_bright, atol=1e-5, rtol=0)


def gray_mean(image: torch.Tensor) -> torch.Tensor:
    red, green, blue = image
    return (0.2989 * red + 0.587 * green + 0.114 * blue).mean()


def test_grayscale_per_image():
    config = AugmentationConfig(size=16, grayscale_p=0.5)
    augment = BatchAugmentation(config)
    images = random_images(32, size=16)
    params = augment.sample_params(32, (16, 16), seeded(3))
    out = augment.apply(images, params)
    equal_channels = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (
        out[:, 1] == out[:, 2]
    ).flatten(1).all(1)
    assert torch.equal(equal_channels, params.grayscale)
    assert 0 < int(params.grayscale.sum()) < 32


def test_blur_only_on_selected_images():
    config = AugmentationConfig(
        size=16,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        hflip_p=0.0,
        blur=GaussianBlurConfig(kernel_size=5, sigma=(1.0, 2.0), p=0.5),
    )
    augment = BatchAugmentation(config)
    images = random_images(16, size=16)
    params = augment.sample_params(16, (16, 16), seeded(0))
    out = augment.apply(images, params)
    unchanged = (out - images.float() / 255).abs().flatten(1).amax(1) < 1e-5
    assert torch.equal(unchanged, ~params.blur)
    # Blurring smooths: neighbouring pixels become closer.
    blurred = out[params.blur]
    original = images[params.blur].float() / 255
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * original.diff(dim=-1).abs().mean()


def test_noise_reproducible_and_bounded():
    config = AugmentationConfig(size=8, scale=(1.0, 1.0), hflip_p=0.0, noise_std=0.1)
    augment = BatchAugmentation(config)
    images = random_images(4, size=8, channels=1)
    first = augment(images, seeded(0))
    assert torch.equal(first, augment(images, seeded(0)))
    assert first.min() >= 0
    assert first.max() <= 1
    residual = first - images.float() / 255
    assert 0.05 < residual.std() < 0.15


def test_normalization_applied_last():
    config = AugmentationConfig(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_p=0.0)
    stats = Normalization(mean=(0.5,), std=(0.25,))
    images = random_images(3, size=8, channels=1)
    out = BatchAugmentation(config, stats)(images, seeded(0))
    torch.testing.assert_close(
        out, (images.float() / 255 - 0.5) / 0.25, atol=1e-5, rtol=0
    )


def test_digits_preset_keeps_orientation():
    preset = get_preset("digits")
    assert preset.train.hflip_p == 0.0
    augment = BatchAugmentation(preset.train)
    # A bar in the left columns stays mostly on the left after augmentation.
    images = torch.zeros(200, 1, 8, 8, dtype=torch.uint8)
    images[:, :, 1:7, 1:3] = 255
    out = augment(images, seeded(0))
    left, right = out[..., :4].sum(dim=(1, 2, 3)), out[..., 4:].sum(dim=(1, 2, 3))
    assert (left > 3 * right).all()
    assert out.shape == (200, 1, 8, 8)


def test_single_image_input():
    augment = get_preset("cifar10").train_augmentation()
    out = augment(random_images(1)[0], seeded(0))
    assert out.shape == (3, 32, 32)


def test_float_input_equals_uint8_input():
    augment = get_preset("cifar10").train_augmentation()
    images = random_images(4)
    from_uint8 = augment(images, seeded(0))
    from_float = augment(images.float() / 255, seeded(0))
    torch.testing.assert_close(from_uint8, from_float)


def test_empty_batch():
    augment = get_preset("stl10").train_augmentation()
    out = augment(torch.zeros(0, 3, 96, 96, dtype=torch.uint8), seeded(0))
    assert out.shape == (0, 3, 64, 64)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.zeros(2, 4, 8, 8, dtype=torch.uint8), "C = 1 or 3"),
        (torch.zeros(8, 8, dtype=torch.uint8), "C = 1 or 3"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8"),
    ],
)
def test_invalid_images_rejected(images, message):
    augment = get_preset("cifar10").train_augmentation()
    with pytest.raises(ValueError, match=message):
        augment(images)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_rejected():
    augment = get_preset("cifar10").train_augmentation()
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        augment.sample_params(2, (32, 32), torch.Generator(device="cuda"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": (0.5, 0.2)}, "scale"),
        ({"scale": (0.5, 1.5)}, "scale must lie in"),
        ({"ratio": (0.0, 1.0)}, "ratio"),
        ({"hflip_p": 1.5}, "hflip_p"),
        ({"rotation": -1.0}, "rotation"),
        ({"noise_std": -0.1}, "noise_std"),
    ],
)
def test_invalid_config_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentationConfig(size=32, **kwargs)


def test_invalid_jitter_and_blur_rejected():
    with pytest.raises(ValueError, match="hue"):
        ColorJitterConfig(hue=0.6)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitterConfig(brightness=-0.1)
    with pytest.raises(ValueError, match="odd"):
        GaussianBlurConfig(kernel_size=4)
