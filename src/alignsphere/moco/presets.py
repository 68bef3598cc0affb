"""Augmentation presets of MoCo, registered with :mod:`alignsphere.data.presets`.

MoCo v2's views (blur, jitter with p=0.8) are the ``imagenet`` preset of
:mod:`alignsphere.data`. This module adds MoCo v1's views, which Wang &
Isola's align/uniform ImageNet-100 results without "strong augmentation" use.
"""

from __future__ import annotations

from alignsphere.data.augment import AugmentationConfig, ColorJitterConfig, EvalConfig
from alignsphere.data.normalization import IMAGENET_NORMALIZATION
from alignsphere.data.presets import PRESETS, AugmentationPreset, register_preset

__all__ = ["MOCO_V1_PRESET", "register_moco_presets"]

# NOTE: MoCo v1 turns an image gray before the color jitter, and
# BatchAugmentation jitters first. Brightness and contrast act on both orders
# alike, but saturation and hue of a grayed image only change in this order.
MOCO_V1_PRESET = AugmentationPreset(
    name="imagenet_mocov1",
    description=(
        "MoCo v1's ImageNet views at 224 px: RandomResizedCrop(224, scale 0.2-1), "
        "flip, ColorJitter(0.4, 0.4, 0.4, 0.4) on every image, "
        "RandomGrayscale(0.2); evaluation resizes to 256 and center-crops 224"
    ),
    train=AugmentationConfig(
        size=224,
        scale=(0.2, 1.0),
        color_jitter=ColorJitterConfig(0.4, 0.4, 0.4, 0.4, p=1.0),
        grayscale_p=0.2,
    ),
    probe=AugmentationConfig(size=224, scale=(0.08, 1.0)),
    eval=EvalConfig(resize=256, crop=224),
    normalization=IMAGENET_NORMALIZATION,
)


def register_moco_presets() -> None:
    """Add the MoCo presets to the preset registry; later calls do nothing."""
    if MOCO_V1_PRESET.name not in PRESETS:
        register_preset(MOCO_V1_PRESET)
