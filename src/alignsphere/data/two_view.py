"""Datasets that return two independently augmented views of each image."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from alignsphere.data.errors import DatasetNotFoundError
from alignsphere.data.image_folder import image_folder_layout
from alignsphere.data.memory import InMemoryImageDataset
from alignsphere.data.pil import tensor_to_pil


class TwoViewDataset(Dataset):
    """Wrap a dataset of (image, label) items to return (view1, view2, label).

    ``transform`` runs twice per item with independent randomness, so the two
    views form a positive pair. Use it with per-image transforms in DataLoader
    workers. For in-memory data, slicing uint8 batches and calling
    :meth:`BatchAugmentation.two_views` in the training step is faster.

    Args:
        dataset: Any map-style dataset whose items are (image, label).
        transform: Random per-image transform, for example
            :func:`~alignsphere.data.pil.build_pil_train_transform` on PIL images
            or a :class:`~alignsphere.data.augment.BatchAugmentation` on (C, H, W)
            tensors.
    """

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Tensor]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, int]:
        image, label = self.dataset[index]
        return self.transform(image), self.transform(image), label


class _PILView(Dataset):
    """Serve the uint8 images of an in-memory dataset as PIL images."""

    def __init__(self, dataset: InMemoryImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return tensor_to_pil(self.dataset.images[index]), int(
            self.dataset.labels[index]
        )


class TwoViewPILDataset(TwoViewDataset):
    """Two views per item from PIL images, the pipeline of Wang & Isola's STL-10 script.

    Each item is turned into a PIL image (decoded from disk for an image folder,
    converted from the stored array for an in-memory set) and augmented twice
    by a per-image torchvision transform. This is the baseline the batched
    augmentation is benchmarked against.

    Args:
        source: An image-folder path (read with torchvision's ImageFolder, which
            decodes each file on every access and converts it to RGB) or an
            :class:`InMemoryImageDataset`.
        transform: Per-image transform taking a PIL image, usually from
            :func:`~alignsphere.data.pil.build_pil_train_transform`.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | InMemoryImageDataset,
        transform: Callable[[Any], Tensor],
    ) -> None:
        if isinstance(source, InMemoryImageDataset):
            dataset: Dataset = _PILView(source)
            self.classes = source.classes
        else:
            from torchvision.datasets import ImageFolder

            root = Path(source).expanduser()
            try:
                dataset = ImageFolder(os.fspath(root))
            except FileNotFoundError as error:
                raise DatasetNotFoundError(
                    f"Cannot read image folder {root}: {error}. "
                    f"Expected {image_folder_layout(root)}.",
                    searched=[root],
                ) from error
            self.classes = dataset.classes
        super().__init__(dataset, transform)
