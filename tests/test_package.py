"""The package imports with torch alone and exposes the paper's names."""

from __future__ import annotations

import subprocess
import sys

import alignsphere

HEAVY = [
    "lightning",
    "pytorch_lightning",
    "torchmetrics",
    "ray",
    "sentence_transformers",
    "torchvision",
    "sklearn",
    "matplotlib",
]


def test_import_needs_torch_alone():
    code = (
        "import sys, alignsphere; "
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_top_level_names():
    for name in (
        "align_loss",
        "uniform_loss",
        "alignment",
        "uniformity",
        "uniformity_optimum",
    ):
        assert callable(getattr(alignsphere, name))
