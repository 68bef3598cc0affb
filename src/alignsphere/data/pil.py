"""Per-image PIL pipelines: the reference that the batched augmentation replaces.

Wang & Isola's reference STL-10 scripts (github.com/ssnl/align_uniform,
examples/stl10) augment one PIL image at a time with torchvision
transforms inside DataLoader workers. These builders turn an
:class:`~alignsphere.data.augment.AugmentationConfig` into that kind of pipeline
(torchvision ``transforms.v2`` on PIL images, which dispatch to the PIL kernels),
so benchmarks can compare throughput and distributions on the same settings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from alignsphere.data.augment import AugmentationConfig, EvalConfig
from alignsphere.data.normalization import Normalization


def build_pil_train_transform(
    config: AugmentationConfig, normalization: Normalization | None = None
) -> Callable[[Image.Image], Tensor]:
    """Build a torchvision pipeline that augments one PIL image per call.

    The steps follow :class:`AugmentationConfig`: RandomResizedCrop, flip,
    rotation, ``RandomApply([ColorJitter], p)``, RandomGrayscale, blur, then
    conversion to float32 in [0, 1], noise and normalisation.

    Args:
        config: Augmentation settings.
        normalization: Statistics for the final Normalize, or None to skip it.

    Returns:
        A callable mapping a PIL image to a float32 tensor (C, H, W).
    """
    from torchvision.transforms import v2

    steps: list[Callable] = [
        v2.RandomResizedCrop(
            config.output_size, scale=config.scale, ratio=config.ratio, antialias=True
        )
    ]
    if config.hflip_p > 0:
        steps.append(v2.RandomHorizontalFlip(config.hflip_p))
    if config.rotation > 0:
        steps.append(v2.RandomRotation(config.rotation))
    jitter = config.color_jitter
    if jitter is not None and jitter.p > 0:
        color = v2.ColorJitter(
            brightness=jitter.brightness or None,
            contrast=jitter.contrast or None,
            saturation=jitter.saturation or None,
            hue=jitter.hue or None,
        )
        steps.append(color if jitter.p == 1 else v2.RandomApply([color], p=jitter.p))
    if config.grayscale_p > 0:
        steps.append(v2.RandomGrayscale(config.grayscale_p))
    if config.blur is not None and config.blur.p > 0:
        blur = v2.GaussianBlur(config.blur.kernel_size, sigma=config.blur.sigma)
        steps.append(v2.RandomApply([blur], p=config.blur.p))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if config.noise_std > 0:
        steps.append(v2.GaussianNoise(sigma=config.noise_std, clip=True))
    if normalization is not None:
        steps.append(v2.Normalize(normalization.mean, normalization.std))
    return v2.Compose(steps)


def build_pil_eval_transform(
    config: EvalConfig, normalization: Normalization | None = None
) -> Callable[[Image.Image], Tensor]:
    """Build the per-image evaluation pipeline: Resize, CenterCrop, Normalize."""
    from torchvision.transforms import v2

    steps: list[Callable] = []
    if config.resize is not None:
        steps.append(v2.Resize(config.resize, antialias=True))
    if config.crop is not None:
        steps.append(v2.CenterCrop(config.crop))
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    if normalization is not None:
        steps.append(v2.Normalize(normalization.mean, normalization.std))
    return v2.Compose(steps)


def tensor_to_pil(image: Tensor) -> Image.Image:
    """Convert a uint8 (C, H, W) tensor with C = 1 or 3 to a PIL image."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(
            f"expected a uint8 tensor of shape (C, H, W) with C = 1 or 3, got "
            f"{image.dtype} {tuple(image.shape)}"
        )
    array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
    # PIL infers mode "L" from a 2-D uint8 array and "RGB" from (H, W, 3).
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
