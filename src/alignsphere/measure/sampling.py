"""Sampled uniformity over a :class:`RowSet`, in bounded memory.

The estimator and the random draws are those of
:func:`alignsphere.metrics.uniformity_sampled`, so both return the same value
for the same generator. The difference is how rows are read. That function
indexes one tensor with all the draws of a round (2**18 pairs), which on a
memory-mapped file leaves most of the file resident. Here each batch of pairs
is read from the row set, which keeps only that batch in memory.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch

from alignsphere._validation import check_positive
from alignsphere.measure.rows import RowSet
from alignsphere.metrics import UniformityEstimate

# Pairs drawn per round, as in uniformity_sampled, so that the draws match.
_DRAW_ROUND = 1 << 18
# Pairs gathered at a time: 2 x 2048 rows, 12.6 MB as float64 at d = 384.
DEFAULT_BATCH_PAIRS = 2048


def sample_pair_sq_distances(
    rows: RowSet,
    num_pairs: int,
    *,
    generator: torch.Generator | None = None,
    batch_pairs: int = DEFAULT_BATCH_PAIRS,
) -> torch.Tensor:
    """Return ``||x_i - x_j||^2`` of unit rows for random pairs i != j.

    Pairs are drawn independently and uniformly, with replacement, in the
    order that :func:`alignsphere.metrics.uniformity_sampled` draws them.

    Args:
        rows: At least two rows.
        num_pairs: Number of pairs to draw.
        generator: Random generator, for reproducible draws.
        batch_pairs: Pairs whose rows are read at a time.

    Returns:
        ``(num_pairs,)`` float64 squared distances in ``[0, 4]``.
    """
    n = rows.num_rows
    if n < 2:
        raise ValueError(f"sampling pairs needs at least 2 rows, got {n}")
    out = np.empty(num_pairs, dtype=np.float64)
    for start in range(0, num_pairs, _DRAW_ROUND):
        count = min(_DRAW_ROUND, num_pairs - start)
        first = torch.randint(0, n, (count,), generator=generator)
        second = torch.randint(0, n - 1, (count,), generator=generator)
        second += (second >= first).long()
        for begin in range(0, count, batch_pairs):
            stop = min(begin + batch_pairs, count)
            indices = np.concatenate(
                [first[begin:stop].numpy(), second[begin:stop].numpy()]
            )
            unit = rows.take(indices)
            size = stop - begin
            dots = np.einsum("ij,ij->i", unit[:size], unit[size:])
            out[start + begin : start + stop] = np.maximum(2 - 2 * dots, 0)
    return torch.from_numpy(out)


def sampled_uniformity(
    rows: RowSet,
    t: float = 2.0,
    *,
    num_pairs: int = 1_000_000,
    confidence: float = 0.95,
    generator: torch.Generator | None = None,
    batch_pairs: int = DEFAULT_BATCH_PAIRS,
) -> UniformityEstimate:
    r"""Estimate uniformity from random pairs of a row set, with a confidence interval.

    The mean ``m`` of ``e = exp(-t ||x_i - x_j||^2)`` over the drawn pairs is
    unbiased for the mean over all pairs. The value is ``log m``, and the
    interval is ``log m +- z s / (m sqrt(n))`` by the delta method, with ``s``
    the sample standard deviation of ``e`` and ``n`` the number of pairs.

    Args:
        rows: At least two rows; they are L2-normalised when read.
        t: Scale > 0. Defaults to 2.
        num_pairs: Pairs to draw. Defaults to 1,000,000.
        confidence: Interval coverage in (0, 1). Defaults to 0.95.
        generator: Random generator, for reproducible draws.
        batch_pairs: Pairs whose rows are read at a time.

    Returns:
        A :class:`~alignsphere.metrics.UniformityEstimate`.
    """
    t = check_positive("t", t)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(num_pairs) < 2:
        raise ValueError(f"num_pairs must be >= 2, got {num_pairs!r}")
    sq = sample_pair_sq_distances(
        rows, int(num_pairs), generator=generator, batch_pairs=batch_pairs
    )
    return estimate_from_exponents(-t * sq, confidence)


def estimate_from_exponents(
    exponents: np.ndarray | torch.Tensor, confidence: float
) -> UniformityEstimate:
    """Return the log-mean-exp of ``exponents`` with its delta-method interval."""
    exponents = np.asarray(exponents, dtype=np.float64)
    peak = float(exponents.max())
    values = np.exp(exponents - peak)
    mean = float(values.mean())
    std = float(values.std(ddof=1))
    count = exponents.size
    value = peak + math.log(mean)
    std_error = std / (mean * math.sqrt(count))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return UniformityEstimate(
        value=value,
        low=value - z * std_error,
        high=value + z * std_error,
        std_error=std_error,
        num_pairs=count,
        confidence=confidence,
    )
