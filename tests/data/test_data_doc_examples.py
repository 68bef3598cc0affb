"""The docstring examples of alignsphere.data and alignsphere.models run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "alignsphere.data.augment",
    "alignsphere.data.memory",
    "alignsphere.data.registry",
    "alignsphere.models.alexnet",
    "alignsphere.models.registry",
    "alignsphere.models.resnet",
    "alignsphere.models.small",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
