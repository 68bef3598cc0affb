"""Shared fixtures: the real data folder named by ALIGNSPHERE_TEST_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path | None:
    value = os.environ.get("ALIGNSPHERE_TEST_DATA")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """Folder of real data for tests, from ALIGNSPHERE_TEST_DATA.

    Skips when the variable is unset; under CI (CI=true) a missing folder fails
    instead, so that tests on real data never silently stop running.
    """
    path = _data_dir()
    in_ci = os.environ.get("CI", "").lower() == "true"
    if path is None or not path.is_dir():
        message = (
            f"real test data not found (ALIGNSPHERE_TEST_DATA={os.environ.get('ALIGNSPHERE_TEST_DATA')!r}); "
            "set it to the folder holding cifar10-jpg.tar.gz, stsb/, senteval/ and gutenberg/"
        )
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return path
