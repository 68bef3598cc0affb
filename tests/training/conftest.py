"""Fixtures of the training tests: crafted checkpoints and real CIFAR-10 JPEGs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


class MarkerPayload:
    """Unpickling this creates a file: harmless proof that pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_crafted(path, marker):
    content = {"state_dict": {"w": torch.zeros(2)}, "extra": MarkerPayload(marker)}
    torch.save(content, path)
    return path


@pytest.fixture
def write_crafted():
    """Return a function that saves a checkpoint whose unpickling creates a file."""
    return _write_crafted


@pytest.fixture(scope="session")
def cifar10_jpg_folder(cifar10_jpg_root: Path) -> Path:
    """Real CIFAR-10 JPEGs: 30 train and 10 test images per class."""
    return cifar10_jpg_root
