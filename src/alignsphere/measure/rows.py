"""Sets of rows drawn from one or more embedding arrays, and their validation.

A :class:`RowSet` is what a metric runs over: every row of a file, the rows of
two files together, or the rows that a pair list names (repeats allowed). It
reads its rows chunk by chunk or by index, so it never keeps more than a chunk
in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from alignsphere.measure.arrays import EmbeddingArray
from alignsphere.measure.errors import MeasureInputError

DEFAULT_CHUNK_ROWS = 8192
_ROWS_SHOWN = 5


@dataclass(frozen=True)
class RowSegment:
    """Rows of one array: all of them, or those at ``rows`` in that order.

    Attributes:
        array: The array the rows come from.
        rows: int64 row indices into ``array`` (repeats allowed), or None for
            every row in order.
    """

    array: EmbeddingArray
    rows: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        """Number of rows in the segment."""
        return self.array.num_rows if self.rows is None else len(self.rows)


@dataclass(frozen=True)
class RowChunk:
    """Consecutive rows of a :class:`RowSet`, validated and L2-normalised.

    Attributes:
        unit: ``(n, d)`` float64 unit rows.
        norms: ``(n,)`` float64 L2 norms of the rows as stored.
        start: Position of the first row in the row set.
    """

    unit: np.ndarray
    norms: np.ndarray
    start: int


class RowSet:
    """An ordered set of rows from one or more arrays of the same width.

    Args:
        segments: The parts, in order. Arrays may repeat across segments.

    Raises:
        MeasureInputError: the arrays differ in their number of columns.
    """

    def __init__(self, segments: Sequence[RowSegment]) -> None:
        if not segments:
            raise ValueError("a RowSet needs at least one segment")
        self.segments = tuple(segments)
        first = self.segments[0].array
        for segment in self.segments[1:]:
            if segment.array.dim != first.dim:
                raise MeasureInputError(
                    f"{segment.array.label}: has {segment.array.dim} columns but "
                    f"{first.label} has {first.dim}; embeddings measured together "
                    "must come from the same encoder layer"
                )
        sizes = [segment.num_rows for segment in self.segments]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @classmethod
    def of(cls, *arrays: EmbeddingArray) -> RowSet:
        """Return the set of every row of ``arrays``, one after the other."""
        return cls([RowSegment(array) for array in arrays])

    @property
    def num_rows(self) -> int:
        """Total number of rows N."""
        return int(self._starts[-1])

    @property
    def dim(self) -> int:
        """Number of columns d."""
        return self.segments[0].array.dim

    @property
    def dtype(self) -> np.dtype:
        """float64 when every array stores float64, float32 otherwise."""
        wide = all(s.array.dtype == np.float64 for s in self.segments)
        return np.dtype(np.float64 if wide else np.float32)

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[RowChunk]:
        """Yield the rows in order, validated and normalised, ``chunk_rows`` at a time.

        Raises:
            MeasureInputError: a row contains NaN or infinite values, or is zero.
        """
        for segment, offset in zip(self.segments, self._starts, strict=False):
            for start in range(0, segment.num_rows, chunk_rows):
                stop = min(start + chunk_rows, segment.num_rows)
                if segment.rows is None:
                    raw = segment.array.read(start, stop)
                    names = np.arange(start, stop, dtype=np.int64)
                else:
                    names = segment.rows[start:stop]
                    raw = _take(segment.array, names)
                unit, norms = normalize_rows(raw, segment.array, names)
                yield RowChunk(unit, norms, int(offset) + start)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Return the rows at positions ``indices``, validated and L2-normalised.

        Args:
            indices: int64 positions in ``[0, num_rows)``, any order.

        Returns:
            ``(len(indices), d)`` float64 unit rows.
        """
        indices = np.asarray(indices, dtype=np.int64)
        segment_of = np.searchsorted(self._starts, indices, side="right") - 1
        numbers = np.unique(segment_of)
        if len(numbers) == 1:
            segment = self.segments[numbers[0]]
            local = indices - self._starts[numbers[0]]
            rows = local if segment.rows is None else segment.rows[local]
            return normalize_rows(_take(segment.array, rows), segment.array, rows)[0]
        out = np.empty((len(indices), self.dim), dtype=np.float64)
        for number in numbers:
            segment = self.segments[number]
            where = np.flatnonzero(segment_of == number)
            local = indices[where] - self._starts[number]
            rows = local if segment.rows is None else segment.rows[local]
            unit, _ = normalize_rows(_take(segment.array, rows), segment.array, rows)
            out[where] = unit
        return out

    def load(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Return every row, validated and L2-normalised, as a tensor of :attr:`dtype`."""
        out = np.empty((self.num_rows, self.dim), dtype=self.dtype)
        for chunk in self.chunks(chunk_rows):
            stop = chunk.start + chunk.unit.shape[0]
            out[chunk.start : stop] = chunk.unit
        return torch.from_numpy(out)

    def subset(self, keep: np.ndarray) -> RowSet:
        """Return the rows at the sorted positions ``keep``, as a new set."""
        segments = []
        for number, segment in enumerate(self.segments):
            low, high = self._starts[number], self._starts[number + 1]
            inside = keep[(keep >= low) & (keep < high)] - low
            if len(inside) == 0:
                continue
            rows = inside if segment.rows is None else segment.rows[inside]
            segments.append(RowSegment(segment.array, rows.astype(np.int64)))
        return RowSet(segments)

    def describe(self) -> str:
        """Return a short description of where the rows come from."""
        parts = []
        for segment in self.segments:
            if segment.rows is None:
                parts.append(f"every row of {segment.array.label}")
            else:
                parts.append(f"{len(segment.rows):,} rows of {segment.array.label}")
        return ", ".join(parts)


def _take(array: EmbeddingArray, rows: np.ndarray) -> np.ndarray:
    # Read each distinct row once, in file order, then restore the request order.
    unique, inverse = np.unique(rows, return_inverse=True)
    values = array.take(unique)
    if len(unique) == len(rows) and np.array_equal(unique, rows):
        return values
    return values[inverse.reshape(-1)]


def normalize_rows(
    raw: np.ndarray, array: EmbeddingArray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate rows of ``array`` and return them L2-normalised, with their norms.

    Args:
        raw: ``(n, d)`` rows as read.
        array: Where the rows come from, for messages.
        rows: Row index in ``array`` of each row, for messages.

    Returns:
        ``(unit, norms)``: float64 unit rows and the float64 norms of ``raw``.

    Raises:
        MeasureInputError: a row contains NaN or infinite values, or is all zeros.
    """
    # numpy, not torch: its element-wise kernels run on one thread, which is
    # faster for chunks this size than torch's thread pool on a busy machine.
    values = np.array(raw, dtype=np.float64)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = rows[~finite]
        raise MeasureInputError(
            f"{array.row_name(int(bad[0]))} contains NaN or infinite values"
            f"{_more_rows(bad)}; drop those rows or fix the encoder that wrote them"
        )
    norms = np.sqrt(np.einsum("ij,ij->i", values, values))
    zero = norms == 0
    if zero.any():
        bad = rows[zero]
        raise MeasureInputError(
            f"{array.row_name(int(bad[0]))} is all zeros, so it has no direction to "
            f"normalise{_more_rows(bad)}; drop zero rows, which usually mark padding "
            "or inputs the encoder failed on"
        )
    if not np.isfinite(norms).all():
        bad = rows[~np.isfinite(norms)]
        raise MeasureInputError(
            f"{array.row_name(int(bad[0]))} has an L2 norm too large for float64"
            f"{_more_rows(bad)}; rescale the embeddings"
        )
    values /= norms[:, None]
    return values, norms


def _more_rows(bad: np.ndarray) -> str:
    if len(bad) == 1:
        return ""
    others = [str(int(row)) for row in bad[1:_ROWS_SHOWN]]
    more = f" and {len(bad) - _ROWS_SHOWN} more" if len(bad) > _ROWS_SHOWN else ""
    return f" (so do row indices {', '.join(others)}{more})"


def distinct_rows(
    rows: RowSet, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[RowSet, int]:
    """Drop exact duplicate rows, keeping the first occurrence of each.

    Rows are duplicates when their stored values are equal bit for bit after
    widening to float64 (so 0.0 and -0.0 differ). A 64-bit hash of every row
    finds the candidates in one pass. Each candidate is then compared with the
    first row of the same hash, so a hash collision never merges two rows.

    Args:
        rows: The set to deduplicate.
        chunk_rows: Rows hashed or compared at a time.

    Returns:
        ``(distinct, removed)``: the rows that remain, in their original order,
        and how many were dropped.
    """
    hashes = np.empty(rows.num_rows, dtype=np.uint64)
    multipliers = _hash_multipliers(rows.dim)
    for segment, start in zip(rows.segments, rows._starts, strict=False):
        for offset in range(0, segment.num_rows, chunk_rows):
            stop = min(offset + chunk_rows, segment.num_rows)
            if segment.rows is None:
                raw = segment.array.read(offset, stop)
            else:
                raw = _take(segment.array, segment.rows[offset:stop])
            position = int(start) + offset
            hashes[position : position + len(raw)] = _row_hashes(raw, multipliers)

    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    run_start = np.ones(len(order), dtype=bool)
    run_start[1:] = ordered[1:] != ordered[:-1]
    duplicate = np.zeros(rows.num_rows, dtype=bool)
    # Members of a run of equal hashes are compared with the run's first
    # (lowest) position. A member that differs is a hash collision, so it joins
    # a new run with the other such members and is compared again.
    members = np.flatnonzero(~run_start)
    heads = order[np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))]
    candidates, candidate_heads = order[members], heads[members]
    while len(candidates):
        unresolved = []
        for begin in range(0, len(candidates), chunk_rows):
            mine = candidates[begin : begin + chunk_rows]
            theirs = candidate_heads[begin : begin + chunk_rows]
            same = _raw_bits(rows, mine) == _raw_bits(rows, theirs)
            equal = same.all(axis=1)
            duplicate[mine[equal]] = True
            unresolved.append(mine[~equal])
        rest = np.sort(np.concatenate(unresolved)) if unresolved else candidates[:0]
        if not len(rest):
            break
        # Within each colliding run, the lowest unresolved position is the new head.
        rest_hashes = hashes[rest]
        rest = rest[np.argsort(rest_hashes, kind="stable")]
        rest_hashes = hashes[rest]
        new_run = np.ones(len(rest), dtype=bool)
        new_run[1:] = rest_hashes[1:] != rest_hashes[:-1]
        new_heads = rest[
            np.maximum.accumulate(np.where(new_run, np.arange(len(rest)), 0))
        ]
        candidates, candidate_heads = rest[~new_run], new_heads[~new_run]
    keep = np.flatnonzero(~duplicate)
    return rows.subset(keep), int(duplicate.sum())


def _raw_bits(rows: RowSet, positions: np.ndarray) -> np.ndarray:
    values = np.empty((len(positions), rows.dim), dtype=np.float64)
    segment_of = np.searchsorted(rows._starts, positions, side="right") - 1
    for number in np.unique(segment_of):
        segment = rows.segments[number]
        where = np.flatnonzero(segment_of == number)
        local = positions[where] - rows._starts[number]
        index = local if segment.rows is None else segment.rows[local]
        values[where] = _take(segment.array, index)
    return values.view(np.uint64)


def _hash_multipliers(dim: int) -> np.ndarray:
    generator = np.random.default_rng(0x5EED)
    return generator.integers(0, 2**63, size=dim, dtype=np.uint64) * np.uint64(
        2
    ) + np.uint64(1)


def _row_hashes(raw: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    bits = np.asarray(raw, dtype=np.float64).view(np.uint64).copy()
    # Mix the high bits (sign, exponent) into the low ones, then combine the
    # columns with odd multipliers; uint64 arithmetic wraps modulo 2**64.
    bits ^= bits >> np.uint64(29)
    bits *= np.uint64(0xBF58476D1CE4E5B9)
    bits ^= bits >> np.uint64(32)
    return (bits * multipliers).sum(axis=1, dtype=np.uint64)
