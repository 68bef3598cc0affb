"""Measure alignment, uniformity and row statistics of embeddings.

:func:`measure_rows` is the engine: it takes the rows that uniformity runs
over and, optionally, row-aligned positive pairs, and returns a
:class:`~alignsphere.measure.report.MeasureReport`. :func:`measure_embeddings`
builds those rows from embedding files; the sentence and image front ends
build them from an encoder's output.

Every row is L2-normalised before any metric, and the norms it had are
reported separately. Memory stays at a few chunks of rows plus ``O(d^2)``,
except for exact uniformity, which keeps its rows in memory (``N x d`` floats).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignsphere._validation import check_positive
from alignsphere.measure.arrays import EmbeddingArray, TensorArray, open_embeddings
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.pairs import read_pair_index
from alignsphere.measure.report import AlignmentResult, MeasureReport, UniformityResult
from alignsphere.measure.rows import (
    DEFAULT_CHUNK_ROWS,
    RowSegment,
    RowSet,
    distinct_rows,
)
from alignsphere.measure.sampling import sampled_uniformity
from alignsphere.measure.statistics import RowStatistics
from alignsphere.metrics import UniformityEstimate, uniformity, uniformity_optimum

logger = logging.getLogger(__name__)

UNIFORMITY_METHODS = ("auto", "exact", "sampled")
UNIFORMITY_SIDES = ("all", "first", "second", "mean")


@dataclass(frozen=True)
class MeasureOptions:
    """Settings of the metrics: exponents, exact or sampled uniformity, spectrum.

    Attributes:
        alpha: Alignment exponent > 0. Defaults to 2.
        t: Uniformity scale > 0. Defaults to 2.
        uniformity: ``"exact"`` (every pair), ``"sampled"`` (random pairs with a
            confidence interval) or ``"auto"`` (exact up to ``exact_max_rows``).
        exact_max_rows: Largest row count that ``"auto"`` computes exactly.
            Defaults to 20,000, because the 2 x 10^8 pairs take a few seconds on
            two CPU cores at d = 384 and exact uniformity keeps its rows in
            memory.
        num_pairs: Pairs drawn by the sampled estimate. Defaults to 1,000,000,
            which gives a standard error of about 1e-3.
        confidence: Coverage of the sampled interval. Defaults to 0.95.
        seed: Seed of the pair sampling, for reproducible numbers.
        center: Take the spectrum (effective rank, alpha-ReQ) of the centred
            unit rows. Defaults to True.
        first_rank: First rank of the alpha-ReQ fit. Defaults to 1.
        last_rank: Last rank of the alpha-ReQ fit; None fits every nonzero
            eigenvalue.
        chunk_rows: Rows read at a time. Defaults to 8192.
    """

    alpha: float = 2.0
    t: float = 2.0
    uniformity: str = "auto"
    exact_max_rows: int = 20_000
    num_pairs: int = 1_000_000
    confidence: float = 0.95
    seed: int = 0
    center: bool = True
    first_rank: int = 1
    last_rank: int | None = None
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    def __post_init__(self) -> None:
        for name in ("alpha", "t"):
            try:
                check_positive(name, getattr(self, name))
            except (TypeError, ValueError) as error:
                raise MeasureInputError(str(error)) from None
        if self.uniformity not in UNIFORMITY_METHODS:
            raise MeasureInputError(
                f"uniformity method must be one of {', '.join(UNIFORMITY_METHODS)}, "
                f"got {self.uniformity!r}"
            )
        if not 0 < self.confidence < 1:
            raise MeasureInputError(
                f"confidence must be in (0, 1), such as 0.95, got {self.confidence!r}"
            )
        if self.num_pairs < 2:
            raise MeasureInputError(f"num_pairs must be >= 2, got {self.num_pairs}")
        if self.chunk_rows < 1:
            raise MeasureInputError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        if self.first_rank < 1:
            raise MeasureInputError(f"first_rank must be >= 1, got {self.first_rank}")
        if self.last_rank is not None and self.last_rank < self.first_rank:
            raise MeasureInputError(
                f"last_rank ({self.last_rank}) must not be below first_rank "
                f"({self.first_rank})"
            )


@dataclass(frozen=True)
class PositivePairs:
    """Positive pairs as two row-aligned row sets: row k of one with row k of the other.

    Attributes:
        first: First element of each pair.
        second: Second element of each pair.
        description: Where the pairs come from, in words.
    """

    first: RowSet
    second: RowSet
    description: str

    def __post_init__(self) -> None:
        if self.first.num_rows != self.second.num_rows:
            raise ValueError(
                f"positive pairs need row-aligned sets, got {self.first.num_rows} "
                f"and {self.second.num_rows} rows"
            )


@dataclass(frozen=True)
class UniformityRows:
    """The rows uniformity is computed over.

    Attributes:
        sides: One row set, or two whose uniformity values are averaged (the
            form used in training, ``(L(x) + L(y)) / 2``).
        description: What the rows are, in words.
        duplicates_removed: Exact duplicates dropped, or None if not looked for.
    """

    sides: tuple[RowSet, ...]
    description: str
    duplicates_removed: int | None = None


def measure_rows(
    rows: UniformityRows,
    pairs: PositivePairs | None = None,
    *,
    options: MeasureOptions | None = None,
    inputs: Sequence[str] = (),
    notes: Sequence[str] = (),
    plot: str | Path | None = None,
) -> MeasureReport:
    """Measure alignment, uniformity and row statistics.

    The statistics (spectrum, mean cosine, collapse monitor, raw norms) are
    computed over the uniformity rows, both sides together for a mean of two.

    Args:
        rows: The rows uniformity and the statistics run over.
        pairs: Positive pairs for alignment, or None to skip it.
        options: How to compute; defaults to :class:`MeasureOptions`.
        inputs: Lines describing the inputs, for the report.
        notes: Facts that change how the numbers read, for the report.
        plot: PNG file to write histograms and a 2-D projection to.

    Returns:
        The report.

    Raises:
        MeasureInputError: a row is invalid (the message names it), or there
            are fewer than two rows for uniformity.
    """
    options = options or MeasureOptions()
    timings: dict[str, float] = {}
    pooled = RowSet([segment for side in rows.sides for segment in side.segments])
    dim = pooled.dim
    for side in rows.sides:
        if side.num_rows < 2:
            raise MeasureInputError(
                f"uniformity needs at least 2 rows, but {rows.description} has "
                f"{side.num_rows}; measure more embeddings"
            )
    if pairs is not None and pairs.first.dim != dim:
        raise MeasureInputError(
            f"the positive pairs have {pairs.first.dim} columns but the uniformity rows "
            f"have {dim}; both must come from the same encoder"
        )

    started = time.perf_counter()
    logger.info(
        "reading %s rows x %s for the row statistics", f"{pooled.num_rows:,}", dim
    )
    accumulator = RowStatistics(dim)
    for chunk in pooled.chunks(options.chunk_rows):
        accumulator.update(chunk.unit, chunk.norms)
    timings["read and row statistics"] = time.perf_counter() - started

    started = time.perf_counter()
    statistics = accumulator.compute(
        center=options.center,
        first_rank=options.first_rank,
        last_rank=options.last_rank,
    )
    timings["spectrum"] = time.perf_counter() - started

    alignment_result = None
    if pairs is not None:
        started = time.perf_counter()
        alignment_result = _measure_alignment(pairs, options)
        timings["alignment"] = time.perf_counter() - started

    started = time.perf_counter()
    uniformity_result = _measure_uniformity(rows, options, dim)
    timings[f"uniformity ({uniformity_result.method})"] = time.perf_counter() - started

    report = MeasureReport(
        inputs=tuple(inputs),
        dim=dim,
        alignment=alignment_result,
        uniformity=uniformity_result,
        statistics=statistics,
        statistics_over=(
            rows.description
            if len(rows.sides) == 1
            else f"both sides together ({pooled.num_rows:,} rows)"
        ),
        notes=(*notes, *_automatic_notes(pooled.num_rows, dim, uniformity_result)),
        timings=timings,
    )
    if plot is not None:
        from alignsphere.measure.plot import plot_measurement

        started = time.perf_counter()
        plot_measurement(report, pooled, pairs, plot, seed=options.seed)
        report.timings["plot"] = time.perf_counter() - started
    release_free_memory()
    return report


def release_free_memory() -> None:
    """Return the heap memory that glibc kept after freeing the chunk buffers.

    glibc raises its mmap threshold after large buffers are freed, so later
    chunk buffers come from the heap, and freed heap pages stay resident. With
    the CUDA build of torch 2.14.1, the exit handlers and library destructors
    that run when the process exits bring about 190 MB more into memory (see
    docs/benchmarks/measure.md). Whatever stays resident here adds to that in
    the peak that ``/usr/bin/time`` reports for the whole command. Does nothing
    without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _automatic_notes(num_rows: int, dim: int, result: UniformityResult) -> list[str]:
    notes = []
    if num_rows <= dim:
        notes.append(
            f"{num_rows:,} rows in {dim} dimensions: the centred spectrum has at most "
            f"{num_rows - 1:,} nonzero values, which caps the effective rank"
        )
    if result.gap < 0:
        notes.append(
            "uniformity is below the population optimum, which a finite sample can "
            "reach (N <= d + 1 points on a regular simplex do)"
        )
    return notes


def _measure_alignment(
    pairs: PositivePairs, options: MeasureOptions
) -> AlignmentResult:
    count = pairs.first.num_rows
    logger.info("alignment over %s positive pairs", f"{count:,}")
    total = 0.0
    for start in range(0, count, options.chunk_rows):
        positions = np.arange(start, min(start + options.chunk_rows, count))
        difference = pairs.first.take(positions) - pairs.second.take(positions)
        squared = np.einsum("ij,ij->i", difference, difference)
        total += float(_norm_power(squared, options.alpha).sum())
    return AlignmentResult(
        value=total / count,
        alpha=options.alpha,
        num_pairs=count,
        pairs=pairs.description,
    )


def _norm_power(squared: np.ndarray, alpha: float) -> np.ndarray:
    """Return ``||v||^alpha`` from ``squared = ||v||^2``, with ``0^alpha = 0``."""
    if alpha == 2:
        return squared
    return np.power(squared, alpha / 2)


def _measure_uniformity(
    rows: UniformityRows, options: MeasureOptions, dim: int
) -> UniformityResult:
    largest = max(side.num_rows for side in rows.sides)
    exact = options.uniformity == "exact" or (
        options.uniformity == "auto" and largest <= options.exact_max_rows
    )
    generator = torch.Generator().manual_seed(options.seed)
    values: list[float] = []
    estimates: list[UniformityEstimate] = []
    for side in rows.sides:
        if exact:
            logger.info(
                "exact uniformity over %s rows (%s pairs)",
                f"{side.num_rows:,}",
                f"{side.num_rows * (side.num_rows - 1) // 2:,}",
            )
            values.append(uniformity(side.load(options.chunk_rows), options.t))
        else:
            logger.info(
                "sampled uniformity over %s rows from %s pairs",
                f"{side.num_rows:,}",
                f"{options.num_pairs:,}",
            )
            estimate = sampled_uniformity(
                side,
                options.t,
                num_pairs=options.num_pairs,
                confidence=options.confidence,
                generator=generator,
            )
            estimates.append(estimate)
            values.append(estimate.value)

    value = sum(values) / len(values)
    estimate = None
    if estimates:
        estimate = _average_estimates(estimates)
    optimum = uniformity_optimum(dim, options.t)
    return UniformityResult(
        value=value,
        t=options.t,
        method="exact" if exact else "sampled",
        over=rows.description,
        num_rows=sum(side.num_rows for side in rows.sides),
        duplicates_removed=rows.duplicates_removed,
        estimate=estimate,
        sides=(values[0], values[1]) if len(values) == 2 else None,
        optimum=optimum,
        gap=value - optimum,
    )


def _average_estimates(estimates: list[UniformityEstimate]) -> UniformityEstimate:
    """Return the mean of independent estimates, with the interval of the mean."""
    if len(estimates) == 1:
        return estimates[0]
    count = len(estimates)
    value = sum(e.value for e in estimates) / count
    std_error = sum(e.std_error**2 for e in estimates) ** 0.5 / count
    half_width = (estimates[0].high - estimates[0].value) / estimates[0].std_error
    return UniformityEstimate(
        value=value,
        low=value - half_width * std_error,
        high=value + half_width * std_error,
        std_error=std_error,
        num_pairs=sum(e.num_pairs for e in estimates),
        confidence=estimates[0].confidence,
    )


def _as_array(
    source: str | Path | EmbeddingArray | torch.Tensor | np.ndarray, label: str
) -> tuple[EmbeddingArray, bool]:
    """Return ``source`` as an array and whether this module opened it."""
    if isinstance(source, EmbeddingArray):
        return source, False
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return TensorArray(source, label), False
    return open_embeddings(source), True


def measure_embeddings(
    first: str | Path | EmbeddingArray | torch.Tensor | np.ndarray,
    second: str | Path | EmbeddingArray | torch.Tensor | np.ndarray | None = None,
    *,
    pair_index: str | Path | np.ndarray | None = None,
    uniformity_over: str = "all",
    dedup: bool = False,
    options: MeasureOptions | None = None,
    plot: str | Path | None = None,
) -> MeasureReport:
    """Measure embeddings from files, arrays or tensors.

    With ``second`` and no ``pair_index``, row i of ``first`` and row i of
    ``second`` are a positive pair. With ``pair_index``, each pair ``(i, j)``
    is row i of ``first`` with row j of ``second`` (of ``first`` when there is
    no ``second``).

    Args:
        first: Embeddings: a file path (see
            :func:`~alignsphere.measure.arrays.open_embeddings`), an
            :class:`EmbeddingArray`, or an ``(N, d)`` tensor or numpy array.
        second: Embeddings of the positives, in the same forms.
        pair_index: Positive pairs of row indices: an index file (see
            :func:`~alignsphere.measure.pairs.read_pair_index`) or an int
            array of shape ``(P, 2)``.
        uniformity_over: Which rows uniformity runs over. ``"all"`` (default)
            is every row of every input. ``"first"`` or ``"second"`` is one side
            of the pairs, which with an index means the rows it names, repeats
            included. ``"mean"`` averages the values of both sides.
        dedup: Drop exact duplicate rows before uniformity and the statistics.
            Defaults to False.
        options: How to compute; defaults to :class:`MeasureOptions`.
        plot: PNG file for histograms and a 2-D projection.

    Returns:
        The report.

    Raises:
        MeasureInputError: an input is invalid; the message names the file, the
            row and the fix.

    Example:
        >>> x = torch.nn.functional.normalize(torch.randn(500, 16), dim=1)
        >>> report = measure_embeddings(x, x)
        >>> report.alignment.value
        0.0
    """
    if uniformity_over not in UNIFORMITY_SIDES:
        raise MeasureInputError(
            f"uniformity_over must be one of {', '.join(UNIFORMITY_SIDES)}, got "
            f"{uniformity_over!r}"
        )
    opened: list[EmbeddingArray] = []
    try:
        first_array, own = _as_array(first, "first")
        if own:
            opened.append(first_array)
        second_array = None
        if second is not None:
            second_array, own = _as_array(second, "second")
            if own:
                opened.append(second_array)
        return _measure_arrays(
            first_array, second_array, pair_index, uniformity_over, dedup, options, plot
        )
    finally:
        for array in opened:
            array.close()


def _measure_arrays(
    first: EmbeddingArray,
    second: EmbeddingArray | None,
    pair_index: str | Path | np.ndarray | None,
    uniformity_over: str,
    dedup: bool,
    options: MeasureOptions | None,
    plot: str | Path | None,
) -> MeasureReport:
    options = options or MeasureOptions()
    inputs = [_describe_array(first)]
    if second is not None:
        inputs.append(_describe_array(second))
        if second.dim != first.dim:
            raise MeasureInputError(
                f"{second.label}: has {second.dim} columns but {first.label} has "
                f"{first.dim}; both files must come from the same encoder"
            )

    pairs = None
    first_side = second_side = None
    if pair_index is not None:
        first_rows, second_rows, index_name = _load_pair_index(
            pair_index, first, second or first
        )
        partner = second or first
        first_side = RowSet([RowSegment(first, first_rows)])
        second_side = RowSet([RowSegment(partner, second_rows)])
        pairs = PositivePairs(
            first_side,
            second_side,
            f"{len(first_rows):,} pairs (i, j) from {index_name}: row i of "
            f"{first.label} with row j of {partner.label}",
        )
        inputs.append(f"{index_name} ({len(first_rows):,} positive pairs)")
    elif second is not None:
        if second.num_rows != first.num_rows:
            shorter, longer = sorted((first, second), key=lambda a: a.num_rows)
            raise MeasureInputError(
                f"{longer.label}: has {longer.num_rows:,} rows but {shorter.label} has "
                f"{shorter.num_rows:,}, so row index {shorter.num_rows} of "
                f"{longer.label} has no positive; row i of one file must pair with "
                "row i of the other, so give files of equal length, or list the "
                "pairs with --pair-index"
            )
        first_side, second_side = RowSet.of(first), RowSet.of(second)
        pairs = PositivePairs(
            first_side,
            second_side,
            f"{first.num_rows:,} pairs: row i of {first.label} with row i of "
            f"{second.label}",
        )

    if uniformity_over in ("second", "mean") and pairs is None:
        raise MeasureInputError(
            f"uniformity over {uniformity_over!r} needs positive pairs; give a second "
            "embedding file or a pair index, or use --uniformity-over all"
        )
    if uniformity_over == "all":
        arrays = [first] if second is None else [first, second]
        sides = [RowSet.of(*arrays)]
        what = " and ".join(array.label for array in arrays)
        description = f"every row of {what}"
    elif uniformity_over == "first":
        sides = [first_side or RowSet.of(first)]
        description = _side_description("first", first_side, first, pair_index)
    elif uniformity_over == "second":
        sides = [second_side]
        description = _side_description(
            "second", second_side, second or first, pair_index
        )
    else:
        sides = [first_side, second_side]
        description = (
            "the mean of the values over each side of the pairs: "
            + "; ".join(
                [
                    _side_description("first", first_side, first, pair_index),
                    _side_description(
                        "second", second_side, second or first, pair_index
                    ),
                ]
            )
        )
    uniformity_rows = build_uniformity_rows(sides, description, dedup, options)
    return measure_rows(
        uniformity_rows, pairs, options=options, inputs=inputs, plot=plot
    )


def _side_description(
    side: str, rows: RowSet | None, array: EmbeddingArray, pair_index: object
) -> str:
    if rows is None or pair_index is None:
        return f"every row of {array.label}"
    return (
        f"the {side} row of every pair in the index ({rows.num_rows:,} rows of "
        f"{array.label}, repeats included)"
    )


def build_uniformity_rows(
    sides: list[RowSet], description: str, dedup: bool, options: MeasureOptions
) -> UniformityRows:
    """Wrap ``sides`` as :class:`UniformityRows`, dropping exact duplicates if ``dedup``."""
    total = sum(side.num_rows for side in sides)
    if not dedup:
        return UniformityRows(
            tuple(sides),
            f"{description} ({total:,} rows; duplicate rows kept)",
            None,
        )
    started = time.perf_counter()
    distinct = []
    removed = 0
    for side in sides:
        kept, dropped = distinct_rows(side, options.chunk_rows)
        distinct.append(kept)
        removed += dropped
    logger.info(
        "removed %s exact duplicate rows in %.2f s",
        f"{removed:,}",
        time.perf_counter() - started,
    )
    remaining = total - removed
    return UniformityRows(
        tuple(distinct),
        f"{description} ({total:,} rows, {remaining:,} after dropping {removed:,} "
        "exact duplicates)",
        removed,
    )


def _describe_array(array: EmbeddingArray) -> str:
    return f"{array.label} ({array.num_rows:,} x {array.dim}, {array.stored_dtype})"


def _load_pair_index(
    pair_index: str | Path | np.ndarray,
    first: EmbeddingArray,
    second: EmbeddingArray,
) -> tuple[np.ndarray, np.ndarray, str]:
    if isinstance(pair_index, np.ndarray):
        if (
            pair_index.ndim != 2
            or pair_index.shape[1] != 2
            or pair_index.dtype.kind not in "iu"
        ):
            raise MeasureInputError(
                f"pair index must be an integer array of shape (P, 2), got dtype "
                f"{pair_index.dtype} and shape {pair_index.shape}"
            )
        first_rows = pair_index[:, 0].astype(np.int64)
        second_rows = pair_index[:, 1].astype(np.int64)
        lines = np.arange(len(first_rows))
        name = "the pair index array"
        where = "row index"
    else:
        first_rows, second_rows, lines = read_pair_index(pair_index)
        name = str(pair_index)
        where = "row index" if Path(pair_index).suffix.lower() == ".npy" else "line"
    for rows, array, column in ((first_rows, first, 1), (second_rows, second, 2)):
        outside = np.flatnonzero(rows >= array.num_rows)
        if len(outside):
            bad = outside[0]
            raise MeasureInputError(
                f"{name} {where} {lines[bad]}: column {column} names row index "
                f"{rows[bad]}, but {array.label} has {array.num_rows:,} rows (row "
                "indices run from 0); fix the index or give the matching embedding file"
            )
    return first_rows, second_rows, name
