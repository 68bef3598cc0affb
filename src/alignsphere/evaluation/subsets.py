"""Class-stratified subsets of in-memory datasets, fixed by a seed."""

from __future__ import annotations

import numpy as np
import torch

from alignsphere.data import InMemoryImageDataset


def stratified_subset(
    dataset: InMemoryImageDataset, size: int | None, seed: int
) -> InMemoryImageDataset:
    """Return ``size`` images drawn per class in proportion, fixed by ``seed``.

    Returns the dataset itself when ``size`` is None or not smaller than it.
    Falls back to a plain random subset when a class is too small to stratify
    (scikit-learn needs two images per class). The chosen indices are sorted, so
    the subset keeps the dataset's order.
    """
    if size is None or size >= len(dataset):
        return dataset
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(dataset))
    try:
        chosen, _ = train_test_split(
            indices,
            train_size=size,
            stratify=dataset.labels.numpy(),
            random_state=seed,
        )
    except ValueError:
        generator = np.random.default_rng(seed)
        chosen = generator.choice(indices, size=size, replace=False)
    subset = dataset.subset(torch.from_numpy(np.sort(chosen)))
    subset.name = f"{dataset.name}[{size}]"
    return subset
