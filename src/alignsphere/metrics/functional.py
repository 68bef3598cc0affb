"""Alignment and uniformity as metrics: exact for any N, in bounded memory.

The metrics take no gradient and return Python floats. :func:`uniformity` visits
each unordered pair once, in tiles of a few megabytes that stay in cache, and
accumulates the sum in float64; :func:`uniformity_sampled` estimates it from
random pairs with a confidence interval when N is in the millions;
:func:`uniformity_optimum` gives the population value of the uniform
distribution on the sphere, the lower bound that measured values are compared
with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import torch
from torch.nn import functional as F

from alignsphere._numerics import safe_pow_half
from alignsphere._validation import (
    check_features,
    check_pair,
    check_positive,
    check_rows_in_chunks,
)

# exp(-80) = 1.8e-35 is still a normal float32 (the smallest is 1.2e-38), so for
# 4t <= 80 every term exp(-t * sq) with sq in [0, 4] is representable without a
# shift. Larger t takes a per-tile maximum, which costs one more pass.
_FIXED_SHIFT_MAX_EXPONENT = 80.0

# Tiles of 1024 x 1024 float32 values (4 MiB) keep the product and its
# exponential in cache: on the 2-core machine of docs/benchmarks/uniformity.md
# they ran 5-10 % faster than 512 x 1024 or 1024 x 2048 and 2.6x faster than
# 2048 x 2048 at N = 16384.
DEFAULT_TILE_ROWS = 1024
DEFAULT_TILE_COLS = 1024

_ALIGN_CHUNK = 1 << 16


@torch.no_grad()
def alignment(
    x: torch.Tensor,
    y: torch.Tensor,
    alpha: float = 2.0,
    *,
    normalize: bool = False,
) -> float:
    r"""Alignment of row-aligned positive pairs, :math:`\frac1N\sum_i\lVert x_i-y_i\rVert^\alpha`.

    Args:
        x: ``(N, d)`` unit rows.
        y: ``(N, d)`` unit rows; row i is the positive of ``x[i]``.
        alpha: Exponent > 0. Defaults to 2.
        normalize: L2-normalise the rows here instead of requiring unit rows.

    Returns:
        The mean, accumulated in float64.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> alignment(x, x)
        0.0
    """
    alpha = check_positive("alpha", alpha)
    check_pair(x[:1], y[:1], normalize=normalize)  # types, dims and d
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of rows (row i of y is the positive "
            f"of row i of x), got {x.shape[0]} and {y.shape[0]}"
        )
    total = 0.0
    for start in range(0, x.shape[0], _ALIGN_CHUNK):
        stop = start + _ALIGN_CHUNK
        xs = check_features(x[start:stop], "x", normalize=normalize, row_offset=start)
        ys = check_features(y[start:stop], "y", normalize=normalize, row_offset=start)
        sq = (xs.double() - ys.double()).pow(2).sum(dim=1)
        total += float(safe_pow_half(sq, alpha).sum())
    return total / x.shape[0]


def _tile_rows_cols(n: int, block_size: int | None) -> tuple[int, int]:
    if block_size is None:
        return DEFAULT_TILE_ROWS, DEFAULT_TILE_COLS
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    return int(block_size), int(block_size)


@torch.no_grad()
def uniformity(
    x: torch.Tensor,
    t: float = 2.0,
    *,
    normalize: bool = False,
    block_size: int | None = None,
) -> float:
    r"""Exact uniformity over all distinct pairs, in bounded memory.

    .. math:: L_\text{uniform} = \log \frac{2}{N(N-1)} \sum_{i<j}
        e^{-t \lVert x_i - x_j \rVert_2^2}

    With unit rows, :math:`-t\lVert x_i-x_j\rVert^2 = 2t(x_i \cdot x_j - 1)`.
    Rows are renormalised in the compute dtype (float32, or float64 for
    float64 input); the products are formed tile by tile over the upper
    triangle only (each pair once), exponentiated in place, summed per tile and
    accumulated across tiles in float64. Memory is O(tile) on top of the input.
    Rounding can put a product of near-identical rows a few ulp above 1, that
    is a squared distance a few ulp below 0; rather than clamp every entry (an
    extra pass over each tile), the final mean is clamped at 1, its exact upper
    bound, so identical rows give exactly 0.

    Args:
        x: ``(N, d)`` unit rows, N >= 2.
        t: Scale > 0. Defaults to 2.
        normalize: L2-normalise the rows here instead of requiring unit rows.
        block_size: Tile edge in rows; defaults to 1024 x 2048 tiles. The result
            does not depend on it beyond rounding.

    Returns:
        The uniformity, finite for any t.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(uniformity(x, t=2), 7)  # log((1 + 2 e^-4) / 3)
        -1.062636
    """
    t = check_positive("t", t)
    x = check_features(x, "x", normalize=normalize, min_rows=2)
    x = F.normalize(x, dim=1)
    n = x.shape[0]
    rows, cols = _tile_rows_cols(n, block_size)
    shift_per_tile = 4 * t > _FIXED_SHIFT_MAX_EXPONENT
    scale = 2 * t
    bias = torch.full((1, 1), -scale, dtype=x.dtype, device=x.device)
    buffer = torch.empty((rows, cols), dtype=x.dtype, device=x.device)

    # Running log-sum-exp: the total is exp(log_max) * acc, with acc in float64.
    log_max = 0.0 if not shift_per_tile else -math.inf
    acc = 0.0
    for i in range(0, n, rows):
        xi = x[i : i + rows]
        for j in range(i, n, cols):
            xj = x[j : j + cols]
            tile = buffer[: xi.shape[0], : xj.shape[0]]
            # tile = 2t * xi.xj - 2t = -t * ||xi - xj||^2 for unit rows.
            torch.addmm(bias, xi, xj.T, beta=1, alpha=scale, out=tile)
            _mask_lower_triangle(tile, i, j)
            if shift_per_tile:
                tile_max = float(tile.max())
                if tile_max == -math.inf:
                    continue
                tile.sub_(tile_max).exp_()
                tile_sum = float(tile.sum())
                if tile_max > log_max:
                    acc = acc * math.exp(log_max - tile_max) + tile_sum
                    log_max = tile_max
                else:
                    acc += tile_sum * math.exp(tile_max - log_max)
            else:
                # A tile sums in its own dtype (pairwise, relative error about
                # 1e-7 in float32); the total across tiles is a Python float.
                acc += float(tile.exp_().sum())
    return min(0.0, log_max + math.log(acc) - math.log(n * (n - 1) / 2))


def _mask_lower_triangle(tile: torch.Tensor, i: int, j: int) -> None:
    """Set entries with global column <= global row to -inf (excluded pairs)."""
    rows, cols = tile.shape
    if j >= i + rows:
        return
    # Column c of the tile is global j + c; row r is global i + r. Exclude
    # j + c <= i + r, that is c - r <= i - j.
    mask = torch.ones((rows, cols), dtype=torch.bool, device=tile.device).tril(i - j)
    tile.masked_fill_(mask, -math.inf)


@dataclass(frozen=True)
class UniformityEstimate:
    """A sampled uniformity value with its confidence interval.

    Attributes:
        value: The estimate, ``log`` of the mean of ``exp(-t * sq)`` over the pairs.
        low: Lower end of the interval.
        high: Upper end of the interval.
        std_error: Standard error of ``value`` (delta method on the log).
        num_pairs: Number of pairs sampled.
        confidence: Coverage of ``[low, high]``.
    """

    value: float
    low: float
    high: float
    std_error: float
    num_pairs: int
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """Return the fields as a dict for JSON output."""
        return asdict(self)


@torch.no_grad()
def uniformity_sampled(
    x: torch.Tensor,
    t: float = 2.0,
    *,
    num_pairs: int = 1_000_000,
    confidence: float = 0.95,
    normalize: bool = False,
    generator: torch.Generator | None = None,
    validate: bool = True,
) -> UniformityEstimate:
    r"""Estimate uniformity from pairs drawn uniformly at random.

    Pairs (i, j), i != j, are drawn independently and uniformly, with
    replacement. The mean ``m`` of ``e = exp(-t ||x_i - x_j||^2)`` is unbiased
    for the all-pairs mean; the interval is ``log m +- z * s / (m sqrt(n))``
    (delta method), with ``s`` the sample standard deviation of ``e``. Values are
    shifted by their maximum before exponentiating, so large t stays finite.

    Args:
        x: ``(N, d)`` unit rows, N >= 2. Rows are read by index, so a tensor over a
            memory-mapped file is read only where sampled.
        t: Scale > 0. Defaults to 2.
        num_pairs: Pairs to draw. Defaults to 1,000,000, which gives a standard
            error of about 1e-3 on typical embeddings.
        confidence: Interval coverage in (0, 1). Defaults to 0.95.
        normalize: L2-normalise the sampled rows instead of requiring unit rows.
        generator: Random generator, for reproducible draws.
        validate: Check every row of ``x`` first. Set False when the caller has
            already checked the rows (sampled rows are always checked).

    Returns:
        A :class:`UniformityEstimate`.
    """
    t = check_positive("t", t)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(num_pairs) < 2:
        raise ValueError(f"num_pairs must be >= 2, got {num_pairs!r}")
    num_pairs = int(num_pairs)
    if validate:
        check_rows_in_chunks(x, "x", normalize=normalize, min_rows=2)
    elif x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (N, d) with N >= 2, got {tuple(x.shape)}")
    n = x.shape[0]

    exponents = torch.empty(num_pairs, dtype=torch.float64)
    chunk = 1 << 18
    for start in range(0, num_pairs, chunk):
        k = min(chunk, num_pairs - start)
        i = torch.randint(0, n, (k,), generator=generator)
        j = torch.randint(0, n - 1, (k,), generator=generator)
        j += (j >= i).long()
        xi = F.normalize(x[i].double(), dim=1)
        xj = F.normalize(x[j].double(), dim=1)
        sq = (2 - 2 * (xi * xj).sum(dim=1)).clamp_min(0)
        exponents[start : start + k] = -t * sq

    peak = float(exponents.max())
    values = (exponents - peak).exp()
    mean = float(values.mean())
    std = float(values.std())
    value = peak + math.log(mean)
    std_error = std / (mean * math.sqrt(num_pairs))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return UniformityEstimate(
        value=value,
        low=value - z * std_error,
        high=value + z * std_error,
        std_error=std_error,
        num_pairs=num_pairs,
        confidence=confidence,
    )


def log_bessel_iv(order: float, z: float) -> float:
    r"""Return :math:`\log I_\nu(z)`, the modified Bessel function of the first kind.

    Sums the series :math:`I_\nu(z) = \sum_k (z/2)^{2k+\nu} / (k!\,\Gamma(k+\nu+1))`
    term by term in log space, so that it is finite where ``I`` itself
    underflows or overflows float64 (large order, small z). Every term is
    positive, so there is no cancellation. Valid for ``order > -1`` and ``z > 0``.
    """
    if z <= 0:
        raise ValueError(f"z must be > 0, got {z}")
    if order <= -1:
        raise ValueError(f"order must be > -1, got {order}")
    log_half_z = math.log(z / 2)
    # The terms rise up to k* where (z/2)^2 = (k+1)(k+order+1), then fall.
    peak = max(0.0, (-(order + 2) + math.sqrt(order**2 + z**2)) / 2)
    terms: list[float] = []
    k = 0
    best = -math.inf
    while True:
        term = (
            (2 * k + order) * log_half_z
            - math.lgamma(k + 1)
            - math.lgamma(k + order + 1)
        )
        terms.append(term)
        best = max(best, term)
        # Past the peak, stop once terms are below 1e-22 of the largest.
        if k > peak and term < best - 50:
            break
        k += 1
    return best + math.log(sum(math.exp(term - best) for term in terms))


def uniformity_optimum(d: int, t: float = 2.0) -> float:
    r"""Population uniformity of the uniform distribution on :math:`S^{d-1}`.

    .. math:: \log \mathbb{E}\, e^{-t\lVert u-v\rVert^2}
        = -2t + \log\Gamma(d/2) + (1 - d/2)\log t + \log I_{d/2-1}(2t)

    No distribution of unit vectors in R^d has a lower population value, so this
    is the reference for measured uniformity. A finite sample can score below
    it: N <= d + 1 points on a regular simplex do. Computed in log space, so
    it is finite for any d (``Gamma(d/2)`` overflows float64 from d = 344).

    Args:
        d: Feature dimension >= 1.
        t: Scale > 0. Defaults to 2.

    Example:
        >>> round(uniformity_optimum(2, t=2), 7)
        -1.5750272
    """
    t = check_positive("t", t)
    if int(d) != d or d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d!r}")
    half = d / 2
    return (
        -2 * t
        + math.lgamma(half)
        + (1 - half) * math.log(t)
        + log_bessel_iv(half - 1, 2 * t)
    )
