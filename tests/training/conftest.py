"""Fixtures of the training tests: crafted checkpoints and real CIFAR-10 JPEGs."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path, PurePosixPath

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


#: Real CIFAR-10 JPEGs per class unpacked for the training tests: 300 train and
#: 100 test images in all.
CIFAR10_PER_CLASS = {"train": 30, "test": 10}


@pytest.fixture(scope="session")
def cifar10_jpg_folder(test_data_dir: Path, tmp_path_factory) -> Path:
    """An image folder ``train/<class>/*.jpg``, ``test/<class>/*.jpg`` of real images.

    Streams cifar10-jpg.tar.gz from ALIGNSPHERE_TEST_DATA and stops once each
    class of each split has its quota.
    """
    archive = test_data_dir / "cifar10-jpg.tar.gz"
    if not archive.is_file():
        pytest.fail(f"{archive} not found in ALIGNSPHERE_TEST_DATA={test_data_dir}")
    root = tmp_path_factory.mktemp("cifar10-jpg")
    counts: Counter[tuple[str, str]] = Counter()
    needed = 10 * sum(CIFAR10_PER_CLASS.values())
    with tarfile.open(archive, mode="r|gz") as stream:
        for member in stream:
            parts = PurePosixPath(member.name).parts
            if (
                not member.isfile()
                or len(parts) != 3
                or parts[0] not in CIFAR10_PER_CLASS
            ):
                continue
            split, label, filename = parts
            if counts[split, label] >= CIFAR10_PER_CLASS[split]:
                continue
            target = root / split / label / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(stream.extractfile(member).read())
            counts[split, label] += 1
            if sum(counts.values()) == needed:
                break
    assert sum(counts.values()) == needed, f"the archive held only {dict(counts)}"
    return root
