"""Per-channel normalisation statistics of image datasets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation of pixel values in [0, 1].

    ``apply`` computes ``(x - mean) / std`` channel by channel, the same as
    ``torchvision.transforms.v2.Normalize``.

    Attributes:
        mean: One value per channel.
        std: One positive value per channel.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"mean and std need one value per channel, got {len(self.mean)} "
                f"and {len(self.std)} values"
            )
        if any(value <= 0 for value in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")

    @property
    def channels(self) -> int:
        """Number of channels the statistics describe."""
        return len(self.mean)

    def apply(self, images: Tensor) -> Tensor:
        """Normalise float images of shape (..., C, H, W) with values in [0, 1]."""
        if images.shape[-3] != self.channels:
            raise ValueError(
                f"Normalization has {self.channels} channels but the images have "
                f"{images.shape[-3]} (shape {tuple(images.shape)})"
            )
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device)
        return (images - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)


#: Statistics of the 50,000 CIFAR-10 training images.
CIFAR10_NORMALIZATION = Normalization(
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)
)
#: Statistics used by Wang & Isola's reference STL-10 training and linear-evaluation
#: scripts (github.com/ssnl/align_uniform, examples/stl10), rounded to 6 digits.
STL10_NORMALIZATION = Normalization(
    mean=(0.440878, 0.427906, 0.386788), std=(0.268268, 0.261045, 0.268668)
)
#: Statistics of the 1,347 training digits of :func:`load_digits_dataset`
#: (pixel values 0..16 scaled to [0, 1]). A test recomputes them.
DIGITS_NORMALIZATION = Normalization(mean=(0.3053,), std=(0.3758,))
#: The ImageNet statistics used by torchvision's pretrained models.
IMAGENET_NORMALIZATION = Normalization(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)


def compute_normalization(images: Tensor, batch_size: int = 4096) -> Normalization:
    """Compute per-channel mean and standard deviation of uint8 images.

    Accumulates sums in float64 over batches, so it runs in bounded memory on a
    large in-memory dataset.

    Args:
        images: uint8 tensor of shape (N, C, H, W), N >= 1.
        batch_size: Images per accumulation step.

    Returns:
        Statistics of the pixel values divided by 255 (population std).
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            "images must be a non-empty uint8 tensor of shape (N, C, H, W), got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], batch_size):
        chunk = images[start : start + batch_size].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return Normalization(
        mean=tuple(mean.tolist()), std=tuple(max(value, 1e-6) for value in std.tolist())
    )
