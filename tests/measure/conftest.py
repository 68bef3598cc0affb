"""Helpers for the measure tests: embeddings and float64 reference metrics."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def unit(x: np.ndarray) -> np.ndarray:
    """Return the rows of ``x`` L2-normalised in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_alignment(x: np.ndarray, y: np.ndarray, alpha: float = 2.0) -> float:
    """Mean of ``||x_i - y_i||^alpha`` over unit rows, pair by pair in float64."""
    return float(np.mean(np.linalg.norm(unit(x) - unit(y), axis=1) ** alpha))


def reference_uniformity(x: np.ndarray, t: float = 2.0) -> float:
    """``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over all pairs i < j."""
    u = unit(x)
    n = len(u)
    i, j = np.triu_indices(n, k=1)
    squared = ((u[i] - u[j]) ** 2).sum(axis=1)
    return float(np.log(np.mean(np.exp(-t * squared))))
