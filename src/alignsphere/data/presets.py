"""Named augmentation presets: training views, linear-probe training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from alignsphere.data.augment import (
    AugmentationConfig,
    BatchAugmentation,
    ColorJitterConfig,
    EvalConfig,
    EvalTransform,
    GaussianBlurConfig,
)
from alignsphere.data.normalization import (
    CIFAR10_NORMALIZATION,
    DIGITS_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    STL10_NORMALIZATION,
    Normalization,
)


@dataclass(frozen=True)
class AugmentationPreset:
    """Everything a dataset needs for training and evaluating an encoder.

    Attributes:
        name: Registry name.
        description: One line on where the values come from.
        train: Augmentation that produces the two views of a positive pair.
        probe: Augmentation for training a linear probe on frozen features.
        eval: Deterministic resize and center crop for evaluation.
        normalization: Per-channel statistics applied after every transform.
        in_channels: Channels of the images the preset expects (1 or 3).
    """

    name: str
    description: str
    train: AugmentationConfig
    probe: AugmentationConfig
    eval: EvalConfig
    normalization: Normalization
    in_channels: int = 3

    @property
    def image_size(self) -> tuple[int, int]:
        """Size (height, width) of the training images given to the encoder."""
        return self.train.output_size

    def train_augmentation(self) -> BatchAugmentation:
        """Build the per-sample batch augmentation for positive pairs."""
        return BatchAugmentation(self.train, self.normalization)

    def probe_augmentation(self) -> BatchAugmentation:
        """Build the per-sample batch augmentation for linear-probe training."""
        return BatchAugmentation(self.probe, self.normalization)

    def eval_transform(self) -> EvalTransform:
        """Build the deterministic evaluation transform."""
        return EvalTransform(self.eval, self.normalization)


_STL10 = AugmentationPreset(
    name="stl10",
    description=(
        "Wang & Isola's STL-10 recipe at 64 px, as in their reference scripts: "
        "RandomResizedCrop(64, scale 0.08-1), flip, ColorJitter(0.4, 0.4, 0.4, 0.4) "
        "on every image, RandomGrayscale(0.2); evaluation resizes to 70 and "
        "center-crops 64"
    ),
    # The reference training script applies ColorJitter unconditionally (no
    # RandomApply), hence p=1.0 rather than SimCLR's 0.8.
    train=AugmentationConfig(
        size=64,
        scale=(0.08, 1.0),
        color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.4, p=1.0),
        grayscale_p=0.2,
    ),
    probe=AugmentationConfig(size=64, scale=(0.08, 1.0)),
    eval=EvalConfig(resize=70, crop=64),
    normalization=STL10_NORMALIZATION,
)

_CIFAR10 = AugmentationPreset(
    name="cifar10",
    description=(
        "SimCLR-style views at 32 px: RandomResizedCrop(32, scale 0.2-1), flip, "
        "ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, RandomGrayscale(0.2); "
        "no resize at evaluation"
    ),
    train=AugmentationConfig(
        size=32,
        scale=(0.2, 1.0),
        color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.1, p=0.8),
        grayscale_p=0.2,
    ),
    probe=AugmentationConfig(size=32, scale=(0.2, 1.0)),
    eval=EvalConfig(),
    normalization=CIFAR10_NORMALIZATION,
)

# NOTE: the digits values are chosen for 8x8 strokes (small crops and rotations,
# no flip because digits are not mirror symmetric) and have not been tuned.
_DIGITS = AugmentationPreset(
    name="digits",
    description=(
        "8x8 grayscale digits: crop of 85-100 % of the area (aspect 0.85-1.18), "
        "rotation up to 10 degrees, no flip, brightness and contrast 0.3 with "
        "p=0.8, pixel noise 0.02"
    ),
    train=AugmentationConfig(
        size=8,
        scale=(0.85, 1.0),
        ratio=(0.85, 1 / 0.85),
        hflip_p=0.0,
        rotation=10.0,
        color_jitter=ColorJitterConfig(brightness=0.3, contrast=0.3, p=0.8),
        noise_std=0.02,
    ),
    probe=AugmentationConfig(
        size=8, scale=(0.9, 1.0), ratio=(0.9, 1 / 0.9), hflip_p=0.0
    ),
    eval=EvalConfig(),
    normalization=DIGITS_NORMALIZATION,
    in_channels=1,
)

_IMAGENET = AugmentationPreset(
    name="imagenet",
    description=(
        "MoCo v2's ImageNet views at 224 px: RandomResizedCrop(224, scale 0.2-1), "
        "ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8, RandomGrayscale(0.2), "
        "Gaussian blur (sigma 0.1-2, p=0.5), flip; evaluation resizes to 256 and "
        "center-crops 224"
    ),
    train=AugmentationConfig(
        size=224,
        scale=(0.2, 1.0),
        color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.1, p=0.8),
        grayscale_p=0.2,
        # A kernel about 10 % of the image side, as SimCLR uses.
        blur=GaussianBlurConfig(kernel_size=23, sigma=(0.1, 2.0), p=0.5),
    ),
    probe=AugmentationConfig(size=224, scale=(0.08, 1.0)),
    eval=EvalConfig(resize=256, crop=224),
    normalization=IMAGENET_NORMALIZATION,
)

PRESETS: dict[str, AugmentationPreset] = {
    preset.name: preset for preset in (_DIGITS, _CIFAR10, _STL10, _IMAGENET)
}

#: Preset used by default for each dataset name of :func:`load_dataset`.
DEFAULT_PRESET_FOR_DATASET = {
    "digits": "digits",
    "cifar10": "cifar10",
    "stl10": "stl10",
    "imagefolder": "imagenet",
}


def list_presets() -> list[str]:
    """Return the registered preset names in sorted order."""
    return sorted(PRESETS)


def get_preset(name: str) -> AugmentationPreset:
    """Look up an augmentation preset by name.

    Raises:
        ValueError: On an unknown name; the message lists the valid ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"Unknown augmentation preset {name!r}; valid presets: "
            f"{', '.join(list_presets())}"
        ) from None


def register_preset(preset: AugmentationPreset, *, overwrite: bool = False) -> None:
    """Add a preset to the registry so that :func:`get_preset` finds it by name.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is False.
    """
    if preset.name in PRESETS and not overwrite:
        raise ValueError(
            f"Preset {preset.name!r} already exists; pass overwrite=True to replace it"
        )
    PRESETS[preset.name] = preset
