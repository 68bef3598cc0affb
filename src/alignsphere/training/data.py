"""Batches of in-memory uint8 images for training, sharded and shuffled by epoch.

The images stay as one uint8 tensor; a DataLoader draws index batches and
slices the tensor once per batch (``__getitems__``), and the training step
augments the batch per sample on its device. The order of epoch e is a function
of the seed and e alone (``DistributedSampler`` with ``set_epoch``, one replica
outside DDP), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from alignsphere.data import (
    DEFAULT_PRESET_FOR_DATASET,
    AugmentationPreset,
    EvalConfig,
    InMemoryImageDataset,
    get_preset,
    load_dataset,
)
from alignsphere.evaluation.subsets import stratified_subset
from alignsphere.training.config import DataConfig

logger = logging.getLogger(__name__)


class ImageBatches(Dataset):
    """Map-style view of an in-memory dataset that fetches whole batches.

    ``DataLoader`` calls ``__getitems__`` with the batch's indices, which
    returns ``(images, labels)`` sliced in one indexing operation; use
    :func:`collate_batch` as the loader's ``collate_fn``.
    """

    def __init__(self, dataset: InMemoryImageDataset) -> None:
        self.images = dataset.images
        self.labels = dataset.labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[index], self.labels[index]


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Return a batch from :meth:`ImageBatches.__getitems__` as it is."""
    return batch


def resolve_preset(config: DataConfig) -> AugmentationPreset:
    """Return the augmentation preset of a data config, resized to ``image_size``.

    With ``image_size`` set, the training and probe crops take that size, and the
    evaluation resize (if any) is scaled by the same factor as the crop (the
    STL-10 preset's resize 70 and crop 64 become 35 and 32 at 32 px).
    """
    name = config.preset or DEFAULT_PRESET_FOR_DATASET[config.name]
    preset = get_preset(name)
    size = config.image_size
    if size is None or (size, size) == preset.image_size:
        return preset
    eval_config = preset.eval
    if eval_config.crop is not None:
        resize = None
        if eval_config.resize is not None:
            resize = max(size, round(eval_config.resize * size / eval_config.crop))
        eval_config = EvalConfig(resize=resize, crop=size)
    else:
        eval_config = EvalConfig(resize=size, crop=size)
    return dataclasses.replace(
        preset,
        train=dataclasses.replace(preset.train, size=size),
        probe=dataclasses.replace(preset.probe, size=size),
        eval=eval_config,
    )


def load_split(
    config: DataConfig, split: str, limit: int | None, seed: int
) -> InMemoryImageDataset:
    """Load one split of the configured dataset, cut to ``limit`` images."""
    kwargs: dict = {"progress": False}
    if config.name == "imagefolder":
        kwargs["image_size"] = config.decode_size
    dataset = load_dataset(config.name, config.root, split, **kwargs)
    return stratified_subset(dataset, limit, seed)


def view_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """Return the CPU generator of one batch's augmentation.

    Its seed mixes the run's seed, the epoch, the batch index and the rank with
    ``numpy.random.SeedSequence``, so every batch of every rank draws its own
    views and a resumed run draws the same views as an uninterrupted one.
    """
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2)
    value = (int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1)
    return torch.Generator().manual_seed(value)


class ImageDataModule(L.LightningDataModule):
    """Train and held-out splits of an in-memory image dataset.

    ``optim_batch_size`` is the global batch; under DDP each of W ranks gets
    ``batch_size / W`` images (W must divide it). The last incomplete batch of
    an epoch is dropped, because uniformity needs every batch to be full-sized
    and equal on all ranks.

    Args:
        config: The data section of the training config.
        batch_size: Global batch size.
        seed: Seed of the epoch order and of the subsets.
    """

    def __init__(self, config: DataConfig, batch_size: int, seed: int) -> None:
        super().__init__()
        self.config = config
        self.batch_size = batch_size
        self.seed = seed
        self.train_set: InMemoryImageDataset | None = None
        self.test_set: InMemoryImageDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = load_split(
                self.config, self.config.train_split, self.config.train_limit, self.seed
            )
            logger.info("training on %s", self.train_set)
        if self.test_set is None:
            self.test_set = load_split(
                self.config, self.config.test_split, self.config.test_limit, self.seed
            )

    def per_rank_batch_size(self, world_size: int) -> int:
        """Return the batch of one rank, checking that ranks split it evenly."""
        if self.batch_size % world_size:
            raise ValueError(
                f"optim.batch_size={self.batch_size} is not divisible by the "
                f"{world_size} DDP ranks; use a multiple of {world_size}"
            )
        return self.batch_size // world_size

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        world_size = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        batch_size = self.per_rank_batch_size(world_size)
        per_rank_images = len(self.train_set) // world_size
        if per_rank_images < batch_size:
            raise ValueError(
                f"{self.train_set.name} has {len(self.train_set)} images, fewer than "
                f"one global batch of optim.batch_size={self.batch_size}; lower "
                "optim.batch_size"
            )
        sampler = DistributedSampler(
            ImageBatches(self.train_set),
            num_replicas=world_size,
            rank=rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        return DataLoader(
            ImageBatches(self.train_set),
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=collate_batch,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )
