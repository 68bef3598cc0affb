"""Row sets: chunked and indexed reads, row validation and exact deduplication."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from alignsphere.measure import (
    MeasureInputError,
    RowSegment,
    RowSet,
    TensorArray,
    distinct_rows,
)
from alignsphere.measure import rows as rows_module

from .conftest import unit


def _row_set(x: np.ndarray, label: str = "emb.npy") -> RowSet:
    return RowSet.of(TensorArray(x, label))


def test_chunks_and_take_match_the_rows(rng):
    x = rng.standard_normal((50, 6))
    y = rng.standard_normal((20, 6))
    rows = RowSet(
        [
            RowSegment(TensorArray(x, "x")),
            RowSegment(TensorArray(y, "y"), np.array([3, 3, 0, 19])),
        ]
    )
    expected = unit(np.concatenate([x, y[[3, 3, 0, 19]]]))
    assert rows.num_rows == 54
    chunks = list(rows.chunks(chunk_rows=7))
    assert_allclose(np.concatenate([c.unit for c in chunks]), expected, rtol=1e-12)
    assert [c.start for c in chunks][:3] == [0, 7, 14]
    positions = np.array([53, 0, 50, 51, 49])
    assert_allclose(rows.take(positions), expected[positions], rtol=1e-12)
    assert_allclose(rows.load().numpy(), expected, rtol=1e-12)


def test_rows_of_different_width():
    with pytest.raises(MeasureInputError, match="y: has 3 columns but x has 4"):
        RowSet.of(TensorArray(np.ones((2, 4)), "x"), TensorArray(np.ones((2, 3)), "y"))


def test_nan_row_is_named(rng):
    x = rng.standard_normal((30, 4))
    x[[17, 20, 21]] = np.nan
    with pytest.raises(MeasureInputError) as error:
        list(_row_set(x).chunks(chunk_rows=8))
    message = str(error.value)
    assert message.startswith("emb.npy row index 17 contains NaN or infinite values")
    assert "row indices 20, 21" in message
    assert "drop those rows" in message


def test_zero_row_is_named(rng):
    x = rng.standard_normal((30, 4))
    x[9] = 0
    with pytest.raises(
        MeasureInputError, match=r"emb.npy row index 9 is all zeros.*drop zero rows"
    ):
        _row_set(x).load()


def test_invalid_row_named_through_an_index(rng):
    x = rng.standard_normal((30, 4))
    x[12] = np.inf
    rows = RowSet([RowSegment(TensorArray(x, "emb.npy"), np.array([1, 12, 5]))])
    with pytest.raises(
        MeasureInputError, match="row index 12 contains NaN or infinite"
    ):
        rows.take(np.array([1]))
        rows.take(np.array([0, 1]))


def test_distinct_rows_drops_exact_duplicates(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    x[10] = x[3]
    x[30] = x[3]
    x[31] = x[7]
    x[32] = -0.0 * x[7] + x[7]  # equal bits to row 7 as well
    x[33] = np.nextafter(x[7], np.float32(np.inf))  # differs in the last bit
    distinct, removed = distinct_rows(_row_set(x), chunk_rows=6)
    assert removed == 4
    kept = np.array(sorted(set(range(40)) - {10, 30, 31, 32}))
    assert_allclose(distinct.load().numpy(), unit(x[kept]), rtol=1e-6)


def test_distinct_rows_survives_hash_collisions(rng, monkeypatch):
    # Every row gets the same hash, so only the exact comparison separates them.
    monkeypatch.setattr(
        rows_module,
        "_row_hashes",
        lambda raw, multipliers: np.zeros(len(raw), np.uint64),
    )
    x = rng.standard_normal((25, 3))
    x[[5, 9, 20]] = x[2]
    x[[11, 24]] = x[8]
    distinct, removed = distinct_rows(_row_set(x), chunk_rows=4)
    expected = np.unique(x, axis=0, return_index=True)[1]
    assert removed == 5
    assert_allclose(distinct.load().numpy(), unit(x[np.sort(expected)]), rtol=1e-12)


def test_distinct_rows_across_files(rng):
    x = rng.standard_normal((6, 3))
    y = np.concatenate([x[:2], rng.standard_normal((2, 3))])
    rows = RowSet.of(TensorArray(x, "x"), TensorArray(y, "y"))
    distinct, removed = distinct_rows(rows)
    assert removed == 2
    assert distinct.num_rows == 8
    assert_array_equal([s.array.label for s in distinct.segments], ["x", "y"])
    assert_array_equal(distinct.segments[1].rows, [2, 3])
