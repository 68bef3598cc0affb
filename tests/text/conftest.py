"""Fixtures of the text tests: the real corpus, SentEval and STS-B folders."""

from __future__ import annotations

from pathlib import Path

import pytest


def _subfolder(test_data_dir: Path, name: str) -> Path:
    folder = test_data_dir / name
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing from ALIGNSPHERE_TEST_DATA={test_data_dir}")
    return folder


@pytest.fixture(scope="session")
def gutenberg_dir(test_data_dir: Path) -> Path:
    """Sixteen Project Gutenberg novels as they were downloaded."""
    return _subfolder(test_data_dir, "gutenberg")


@pytest.fixture(scope="session")
def senteval_dir(test_data_dir: Path) -> Path:
    """The original release files of MR, CR, SUBJ, MPQA and TREC."""
    return _subfolder(test_data_dir, "senteval")


@pytest.fixture(scope="session")
def stsb_dir(test_data_dir: Path) -> Path:
    """STS Benchmark train, dev and test files."""
    return _subfolder(test_data_dir, "stsb")
