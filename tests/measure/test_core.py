"""measure_embeddings against brute-force float64 references, for every input form."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from alignsphere.measure import (
    MeasureInputError,
    MeasureOptions,
    RowSet,
    TensorArray,
    measure_embeddings,
    sampled_uniformity,
)
from alignsphere.metrics import uniformity_optimum, uniformity_sampled

from .conftest import reference_alignment, reference_uniformity, unit


@pytest.fixture
def views(rng):
    x = rng.standard_normal((300, 12)).astype(np.float32)
    y = (x + 0.5 * rng.standard_normal(x.shape)).astype(np.float32)
    return x, y


@pytest.mark.parametrize("alpha", [2.0, 1.0, 0.5])
def test_two_files_alignment_and_uniformity(tmp_path, views, alpha):
    x, y = views
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    report = measure_embeddings(
        tmp_path / "x.npy",
        tmp_path / "y.npy",
        options=MeasureOptions(alpha=alpha, t=3.0, chunk_rows=64),
    )
    assert report.alignment.value == pytest.approx(
        reference_alignment(x, y, alpha), rel=1e-9
    )
    assert report.alignment.num_pairs == 300
    expected = reference_uniformity(np.concatenate([x, y]), t=3.0)
    assert report.uniformity.method == "exact"
    assert report.uniformity.value == pytest.approx(expected, abs=2e-6)
    assert report.uniformity.num_rows == 600
    assert report.uniformity.optimum == pytest.approx(uniformity_optimum(12, 3.0))
    assert report.uniformity.gap == pytest.approx(
        report.uniformity.value - report.uniformity.optimum
    )
    assert report.dim == 12
    assert "every row of" in report.uniformity.over
    assert "duplicate rows kept" in report.uniformity.over


@pytest.mark.parametrize(
    ("side", "rows"),
    [
        ("first", lambda x, y: [x]),
        ("second", lambda x, y: [y]),
        ("mean", lambda x, y: [x, y]),
    ],
)
def test_uniformity_over_one_side_or_the_mean(views, side, rows):
    x, y = views
    report = measure_embeddings(x, y, uniformity_over=side)
    expected = np.mean([reference_uniformity(part) for part in rows(x, y)])
    assert report.uniformity.value == pytest.approx(expected, abs=2e-6)
    if side == "mean":
        assert report.uniformity.sides[0] == pytest.approx(
            reference_uniformity(x), abs=2e-6
        )
        assert report.uniformity.sides[1] == pytest.approx(
            reference_uniformity(y), abs=2e-6
        )
        assert report.statistics.num_rows == 600


def test_pair_index_within_one_file(tmp_path, rng):
    x = rng.standard_normal((50, 8))
    pairs = np.array([[0, 1], [2, 3], [2, 5], [49, 0]])
    (tmp_path / "pairs.txt").write_text(
        "# i j\n" + "\n".join(f"{i}, {j}" for i, j in pairs) + "\n\n"
    )
    report = measure_embeddings(x, pair_index=tmp_path / "pairs.txt")
    assert report.alignment.value == pytest.approx(
        reference_alignment(x[pairs[:, 0]], x[pairs[:, 1]]), rel=1e-12
    )
    assert report.uniformity.value == pytest.approx(reference_uniformity(x), abs=2e-6)
    first = measure_embeddings(x, pair_index=pairs, uniformity_over="first")
    assert first.uniformity.value == pytest.approx(
        reference_uniformity(x[pairs[:, 0]]), abs=2e-6
    )
    assert "repeats included" in first.uniformity.over


def test_pair_index_across_two_files(rng):
    x = rng.standard_normal((20, 4))
    y = rng.standard_normal((30, 4))
    pairs = np.array([[0, 29], [19, 0], [5, 5]])
    report = measure_embeddings(x, y, pair_index=pairs)
    expected = reference_alignment(x[pairs[:, 0]], y[pairs[:, 1]])
    assert report.alignment.value == pytest.approx(expected, rel=1e-12)


def test_pair_index_out_of_range(tmp_path, rng):
    (tmp_path / "pairs.txt").write_text("0 1\n1 2\n3 50\n")
    with pytest.raises(MeasureInputError) as error:
        measure_embeddings(
            rng.standard_normal((50, 4)), pair_index=tmp_path / "pairs.txt"
        )
    message = str(error.value)
    assert "pairs.txt line 3: column 2 names row index 50" in message
    assert "has 50 rows" in message


def test_dedup_counts_and_value(rng):
    x = rng.standard_normal((100, 6))
    x[50:60] = x[:10]
    report = measure_embeddings(x, dedup=True)
    assert report.uniformity.duplicates_removed == 10
    assert report.uniformity.num_rows == 90
    assert report.uniformity.value == pytest.approx(
        reference_uniformity(x[:50].tolist() + x[60:].tolist()), abs=2e-6
    )
    assert "90 after dropping 10 exact duplicates" in report.uniformity.over
    kept = measure_embeddings(x)
    assert kept.uniformity.duplicates_removed is None
    assert kept.uniformity.value == pytest.approx(reference_uniformity(x), abs=2e-6)


def test_sampled_matches_metrics_estimator(rng):
    x = torch.from_numpy(rng.standard_normal((400, 16)).astype(np.float32))
    rows = RowSet.of(TensorArray(x, "x"))
    mine = sampled_uniformity(
        rows,
        2.0,
        num_pairs=300_000,
        generator=torch.Generator().manual_seed(7),
        batch_pairs=1000,
    )
    theirs = uniformity_sampled(
        x,
        2.0,
        num_pairs=300_000,
        normalize=True,
        generator=torch.Generator().manual_seed(7),
    )
    assert mine.value == pytest.approx(theirs.value, abs=1e-12)
    assert mine.std_error == pytest.approx(theirs.std_error, rel=1e-9)
    assert mine.low == pytest.approx(theirs.low, abs=1e-12)


def test_sampled_interval_covers_exact_value(rng):
    x = rng.standard_normal((2000, 10))
    exact = reference_uniformity(x)
    report = measure_embeddings(
        x, options=MeasureOptions(uniformity="sampled", num_pairs=200_000, seed=3)
    )
    estimate = report.uniformity.estimate
    assert report.uniformity.method == "sampled"
    assert estimate.num_pairs == 200_000
    assert estimate.low < exact < estimate.high
    assert estimate.std_error < 5e-3


def test_auto_switches_to_sampled(rng):
    x = rng.standard_normal((120, 4))
    options = MeasureOptions(exact_max_rows=100, num_pairs=10_000)
    assert measure_embeddings(x, options=options).uniformity.method == "sampled"
    assert measure_embeddings(x[:100], options=options).uniformity.method == "exact"


def test_mean_of_sampled_sides_combines_errors(views):
    x, y = views
    report = measure_embeddings(
        x,
        y,
        uniformity_over="mean",
        options=MeasureOptions(uniformity="sampled", num_pairs=50_000),
    )
    first, second = report.uniformity.sides
    estimate = report.uniformity.estimate
    assert report.uniformity.value == pytest.approx((first + second) / 2)
    assert estimate.value == pytest.approx(report.uniformity.value)
    assert estimate.num_pairs == 100_000
    assert estimate.high - estimate.low > 0


def test_report_serialises(views, tmp_path):
    x, y = views
    report = measure_embeddings(x, y)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["alignment"]["num_pairs"] == 300
    assert len(data["statistics"]["spectrum"]["singular_values"]) == 12
    assert data["uniformity"]["estimate"] is None
    table = report.to_table()
    for name in (
        "alignment (alpha = 2)",
        "uniformity (t = 2)",
        "optimum for d = 12",
        "effective rank (RankMe)",
        "alpha-ReQ",
        "std of unit rows",
        "mean pairwise cosine",
        "raw norm (mean)",
    ):
        assert name in table


def test_input_errors(rng, tmp_path):
    x = rng.standard_normal((10, 4))
    with pytest.raises(
        MeasureInputError,
        match="second: has 9 rows but first has 10|first: has 10 rows but second has 9",
    ):
        measure_embeddings(x, x[:9])
    with pytest.raises(MeasureInputError, match="needs positive pairs"):
        measure_embeddings(x, uniformity_over="mean")
    with pytest.raises(MeasureInputError, match="uniformity needs at least 2 rows"):
        measure_embeddings(x[:1])
    with pytest.raises(MeasureInputError, match="t must be a finite number > 0"):
        MeasureOptions(t=0)
    with pytest.raises(MeasureInputError, match="has 3 columns but first has 4"):
        measure_embeddings(x, rng.standard_normal((10, 3)))


def test_unit_rows_are_used_as_given(rng):
    x = unit(rng.standard_normal((64, 5)))
    report = measure_embeddings(torch.from_numpy(x), torch.from_numpy(x))
    assert report.alignment.value == 0.0
    assert report.statistics.norms.max == pytest.approx(1.0)
