"""An image dataset decoded once and kept in memory as one uint8 tensor."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

#: Label of an image without a class, such as STL-10's unlabeled split.
UNLABELED = -1


class InMemoryImageDataset(Dataset):
    """Images as one uint8 tensor of shape (N, C, H, W) with int64 labels.

    Every loader in :mod:`alignsphere.data` returns this class. Keeping the whole
    set as a single tensor lets the training step slice a batch with one indexing
    operation and augment it on the accelerator (see
    :class:`~alignsphere.data.augment.BatchAugmentation`), instead of decoding and
    transforming image by image in DataLoader workers.

    Args:
        images: uint8 tensor of shape (N, C, H, W), C is 1 or 3.
        labels: Integer tensor of shape (N,) with values in [0, len(classes)), or
            :data:`UNLABELED` (-1) for images without a class.
        classes: Class names, indexed by label.
        name: Short name of the dataset and split, used in logs and errors.
        transform: Optional callable applied to each (C, H, W) uint8 image in
            ``__getitem__``. ``iter_batches`` ignores it.

    Raises:
        ValueError: On a wrong dtype or shape, a length mismatch, or labels outside
            [-1, len(classes)).

    Example:
        >>> images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
        >>> ds = InMemoryImageDataset(images, torch.tensor([0, 1, 0, 1]), ["a", "b"])
        >>> ds.num_classes, ds.image_shape
        (2, (3, 8, 8))
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        classes: Sequence[str],
        name: str = "images",
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if not isinstance(images, Tensor) or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 tensor, got {type(images).__name__} "
                f"with dtype {getattr(images, 'dtype', None)}"
            )
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                "images must have shape (N, C, H, W) with C = 1 or 3, "
                f"got {tuple(images.shape)}"
            )

        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        labels = labels.to(torch.int64)
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match images, "
                f"got {tuple(labels.shape)}"
            )

        classes = [str(name) for name in classes]
        if labels.numel() > 0:
            low, high = int(labels.min()), int(labels.max())
            if low < UNLABELED or high >= len(classes):
                raise ValueError(
                    f"labels must lie in [-1, {len(classes)}) for {len(classes)} "
                    f"classes, got values from {low} to {high}"
                )

        self.images = images
        self.labels = labels
        self.classes = classes
        self.name = name
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, size={len(self)}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes})"
        )

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of ``classes``)."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one image."""
        _, channels, height, width = self.images.shape
        return channels, height, width

    @property
    def in_channels(self) -> int:
        """Number of image channels, 1 (grayscale) or 3 (RGB)."""
        return self.images.shape[1]

    @property
    def is_labeled(self) -> bool:
        """Whether every image has a class label (no label is -1)."""
        return bool((self.labels != UNLABELED).all())

    def subset(self, indices: Sequence[int] | Tensor) -> InMemoryImageDataset:
        """Select images by index into a new dataset that shares the class names.

        Args:
            indices: Integer indices or a boolean mask of length N.

        Returns:
            A new dataset holding copies of the selected images and labels.
        """
        index = torch.as_tensor(indices)
        if index.dtype != torch.bool:
            index = index.to(torch.int64)
        return InMemoryImageDataset(
            self.images[index],
            self.labels[index],
            self.classes,
            name=self.name,
            transform=self.transform,
        )

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (images, labels) batches by slicing the stored tensors.

        This replaces a DataLoader when the images are augmented per batch in the
        training step: there is no per-item collation and no worker process.

        Args:
            batch_size: Images per batch, at least 1.
            shuffle: Draw a random permutation for this pass over the data.
            drop_last: Skip the last batch when it has fewer than ``batch_size``
                images.
            generator: CPU generator for the permutation, for reproducible order.
            device: Move each batch to this device (non-blocking from pinned
                memory where possible).

        Yields:
            uint8 images of shape (B, C, H, W) and int64 labels of shape (B,).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        count = len(self)
        if shuffle:
            order = torch.randperm(count, generator=generator)
        else:
            order = torch.arange(count)
        stop = count - count % batch_size if drop_last else count
        for start in range(0, stop, batch_size):
            index = order[start : start + batch_size]
            images, labels = self.images[index], self.labels[index]
            if device is not None:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
            yield images, labels
