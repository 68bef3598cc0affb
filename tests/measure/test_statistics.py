"""Row statistics and spectrum against independent float64 numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from alignsphere.measure import (
    RowStatistics,
    alpha_req,
    effective_rank,
    feature_statistics,
)

from .conftest import unit


def _anisotropic(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    scales = np.arange(1, d + 1, dtype=np.float64) ** -0.8
    return rng.standard_normal((n, d)) * scales + 0.3


def _reference_effective_rank(matrix: np.ndarray) -> float:
    singular = np.linalg.svd(matrix, compute_uv=False)
    p = singular / singular.sum()
    p = p[p > 1e-300]
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize(("n", "d"), [(400, 16), (12, 32)])
def test_statistics_match_numpy(rng, n, d):
    x = _anisotropic(rng, n, d) * rng.uniform(0.5, 3.0, size=(n, 1))
    stats = feature_statistics(torch.from_numpy(x), chunk_rows=37)
    u = unit(x)

    cosines = u @ u.T
    off_diagonal = cosines[~np.eye(n, dtype=bool)]
    assert stats.mean_cosine == pytest.approx(off_diagonal.mean(), abs=1e-12)
    assert stats.normalized_std == pytest.approx(
        u.std(axis=0, ddof=1).mean(), rel=1e-10
    )
    assert stats.normalized_std_reference == pytest.approx(1 / math.sqrt(d))

    norms = np.linalg.norm(x, axis=1)
    assert stats.norms.mean == pytest.approx(norms.mean())
    assert stats.norms.std == pytest.approx(norms.std(ddof=1))
    assert stats.norms.min == pytest.approx(norms.min())
    assert stats.norms.median == pytest.approx(np.median(norms))
    assert stats.norms.max == pytest.approx(norms.max())

    centred = u - u.mean(axis=0)
    reference = np.linalg.svd(centred, compute_uv=False)
    nonzero = min(n - 1, d)
    assert_allclose(
        stats.spectrum.singular_values[:nonzero], reference[:nonzero], rtol=1e-8
    )
    assert all(value < 1e-6 for value in stats.spectrum.singular_values[nonzero:])
    assert stats.spectrum.effective_rank == pytest.approx(
        _reference_effective_rank(centred), rel=1e-6
    )


def test_uncentred_spectrum(rng):
    x = _anisotropic(rng, 300, 10)
    stats = feature_statistics(torch.from_numpy(x), center=False)
    u = unit(x)
    assert stats.spectrum.centered is False
    assert_allclose(
        stats.spectrum.singular_values, np.linalg.svd(u, compute_uv=False), rtol=1e-8
    )
    assert stats.spectrum.effective_rank == pytest.approx(
        _reference_effective_rank(u), rel=1e-8
    )


def test_alpha_req_matches_polyfit(rng):
    x = _anisotropic(rng, 2000, 24)
    stats = feature_statistics(torch.from_numpy(x))
    u = unit(x)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(u, rowvar=False)))[::-1]
    ranks = np.arange(1, 25)
    slope = np.polyfit(np.log(ranks), np.log(eigenvalues), 1)[0]
    fit = stats.spectrum.alpha_req
    assert fit.alpha == pytest.approx(-slope, rel=1e-8)
    assert (fit.first_rank, fit.last_rank) == (1, 24)

    ranged = feature_statistics(
        torch.from_numpy(x), first_rank=3, last_rank=10
    ).spectrum.alpha_req
    slope = np.polyfit(np.log(ranks[2:10]), np.log(eigenvalues[2:10]), 1)[0]
    assert ranged.alpha == pytest.approx(-slope, rel=1e-8)
    assert (ranged.first_rank, ranged.last_rank) == (3, 10)


def test_alpha_req_exact_power_law():
    k = np.arange(1, 201, dtype=np.float64)
    fit = alpha_req(3.0 * k**-1.25)
    assert fit.alpha == pytest.approx(1.25, rel=1e-12)
    assert fit.r_squared == pytest.approx(1.0)
    assert alpha_req([1.0, 0.0, 0.0]) is None
    with pytest.raises(ValueError, match="non-negative"):
        alpha_req([1.0, -1.0])


def test_effective_rank_edge_cases():
    assert effective_rank([2.0, 2.0, 2.0, 2.0]) == pytest.approx(4.0)
    assert effective_rank([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_rank([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        effective_rank([1.0, np.nan])


def test_collapsed_rows():
    x = torch.ones(50, 8)
    stats = feature_statistics(x)
    assert stats.mean_cosine == pytest.approx(1.0)
    assert stats.normalized_std == pytest.approx(0.0, abs=1e-12)
    assert stats.spectrum.effective_rank == 0.0
    assert stats.spectrum.alpha_req is None


def test_chunked_updates_equal_one_update(rng):
    x = unit(rng.standard_normal((100, 6)))
    norms = np.ones(100)
    whole = RowStatistics(6)
    whole.update(x, norms)
    parts = RowStatistics(6)
    for start in range(0, 100, 13):
        parts.update(torch.from_numpy(x[start : start + 13]), norms[start : start + 13])
    a, b = whole.compute(), parts.compute()
    assert a.mean_cosine == pytest.approx(b.mean_cosine, abs=1e-14)
    assert_allclose(a.spectrum.singular_values, b.spectrum.singular_values, rtol=1e-10)


def test_update_raw_rejects_bad_rows():
    stats = RowStatistics(2)
    with pytest.raises(ValueError, match="NaN"):
        stats.update_raw(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="zero rows"):
        stats.update_raw(torch.zeros(1, 2))
