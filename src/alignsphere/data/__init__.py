"""Image datasets held in memory, per-sample batch augmentation and presets.

Typical use in a training step::

    from alignsphere.data import get_preset, load_dataset

    train = load_dataset("cifar10", root="~/data", split="train")
    preset = get_preset("cifar10")
    augment = preset.train_augmentation()
    generator = torch.Generator().manual_seed(0)
    for images, labels in train.iter_batches(512, shuffle=True, generator=generator):
        view1, view2 = augment.two_views(images.to(device), generator)
"""

from alignsphere.data.augment import (
    AugmentationConfig,
    AugmentationParams,
    BatchAugmentation,
    ColorJitterConfig,
    EvalConfig,
    EvalTransform,
    GaussianBlurConfig,
    sample_crop_boxes,
)
from alignsphere.data.cifar import find_cifar10, load_cifar10, load_cifar10_pickle
from alignsphere.data.digits import load_digits_dataset
from alignsphere.data.errors import (
    CorruptImageError,
    DatasetNotFoundError,
    InvalidDatasetFileError,
)
from alignsphere.data.image_folder import (
    IMAGE_EXTENSIONS,
    decode_image_file,
    decode_images,
    list_image_folder,
    load_image_folder,
)
from alignsphere.data.memory import UNLABELED, InMemoryImageDataset
from alignsphere.data.normalization import (
    CIFAR10_NORMALIZATION,
    DIGITS_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    STL10_NORMALIZATION,
    Normalization,
    compute_normalization,
)
from alignsphere.data.pil import (
    build_pil_eval_transform,
    build_pil_train_transform,
    tensor_to_pil,
)
from alignsphere.data.presets import (
    DEFAULT_PRESET_FOR_DATASET,
    PRESETS,
    AugmentationPreset,
    get_preset,
    list_presets,
    register_preset,
)
from alignsphere.data.registry import DATASET_SPLITS, list_datasets, load_dataset
from alignsphere.data.stl10 import find_stl10, load_stl10
from alignsphere.data.two_view import TwoViewDataset, TwoViewPILDataset

__all__ = [
    "CIFAR10_NORMALIZATION",
    "DATASET_SPLITS",
    "DEFAULT_PRESET_FOR_DATASET",
    "DIGITS_NORMALIZATION",
    "IMAGENET_NORMALIZATION",
    "IMAGE_EXTENSIONS",
    "PRESETS",
    "STL10_NORMALIZATION",
    "UNLABELED",
    "AugmentationConfig",
    "AugmentationParams",
    "AugmentationPreset",
    "BatchAugmentation",
    "ColorJitterConfig",
    "CorruptImageError",
    "DatasetNotFoundError",
    "EvalConfig",
    "EvalTransform",
    "GaussianBlurConfig",
    "InMemoryImageDataset",
    "InvalidDatasetFileError",
    "Normalization",
    "TwoViewDataset",
    "TwoViewPILDataset",
    "build_pil_eval_transform",
    "build_pil_train_transform",
    "compute_normalization",
    "decode_image_file",
    "decode_images",
    "find_cifar10",
    "find_stl10",
    "get_preset",
    "list_datasets",
    "list_image_folder",
    "list_presets",
    "load_cifar10",
    "load_cifar10_pickle",
    "load_dataset",
    "load_digits_dataset",
    "load_image_folder",
    "load_stl10",
    "register_preset",
    "sample_crop_boxes",
    "tensor_to_pil",
]
