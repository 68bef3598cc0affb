r"""Theorem 1 of Wang & Isola (ICML 2020): the contrastive loss as M grows.

For a fixed encoder, temperature :math:`\tau` and M negatives drawn iid from the
feature distribution p,

.. math:: L(M) = \mathbb{E}\Big[-\log \frac{e^{x \cdot y/\tau}}
    {e^{x \cdot y/\tau} + \sum_{i=1}^M e^{x_i^- \cdot y/\tau}}\Big],
    \qquad L(M) - \log M \to
    -\frac{1}{\tau}\mathbb{E}_{pos}[x \cdot y]
    + \mathbb{E}_y\big[\log \mathbb{E}_{x^-} e^{x^- \cdot y/\tau}\big].

The paper bounds the deviation by :math:`O(M^{-2/3})`. Expanding the logarithm
around the mean of the negatives gives the first-order term exactly: the gap
is :math:`c_1/M + O(M^{-2})` with

.. math:: c_1 = \mathbb{E}\big[e^{x \cdot y/\tau} / Z(y)\big]
    - \tfrac12\,\mathbb{E}\big[Z_2(y)/Z(y)^2 - 1\big],\quad
    Z(y) = \mathbb{E}_{x^-} e^{x^- \cdot y/\tau},\
    Z_2(y) = \mathbb{E}_{x^-} e^{2 x^- \cdot y/\tau},

so a log-log plot of the gap has slope -1 once M is past the scale of
:math:`e^{x \cdot y/\tau}/Z(y)`, and a shallower slope before.

The gap is of order 1/M, far below the Monte Carlo noise of L(M) itself, so it
is estimated with a control variate. Per anchor, with
:math:`r = \frac{1}{M Z(y)}\sum_i e^{x_i^- \cdot y/\tau} - 1` and
:math:`e = e^{x \cdot y/\tau}/(M Z(y))`,

.. math:: L(M) - \log M - \text{limit integrand} = \log(1 + r + e),

and since :math:`\mathbb{E}[r \mid y] = 0` exactly (Z is in closed form, or an
exact mean over a finite feature set), :math:`\log(1 + r + e) - r` has the same
mean and a standard deviation of order 1/M instead of :math:`1/\sqrt{M}`. So the
relative error of the gap does not grow with M.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from alignsphere.theory.distributions import PairDistribution

logger = logging.getLogger(__name__)

#: Negatives per anchor, M = 1, 2, 4, ..., 16384.
DEFAULT_NEGATIVE_COUNTS: tuple[int, ...] = tuple(2**k for k in range(15))

# Pairs per chunk of the limit estimate, so a chunk against a finite feature set
# of N rows is a (chunk, N) float64 matrix.
_LIMIT_CHUNK = 4096


@dataclass(frozen=True)
class PowerLawFit:
    """A least-squares line through log(gap) against log(M).

    Attributes:
        slope: Fitted exponent; -1 for a gap of c/M.
        slope_std_error: Standard deviation of the slope over bootstrap
            resamples of the independent pools of negatives.
        coefficient: c in gap = c * M^slope.
        min_negatives: Smallest M in the fit.
        max_negatives: Largest M in the fit.
        num_points: Values of M in the fit.
    """

    slope: float
    slope_std_error: float
    coefficient: float
    min_negatives: int
    max_negatives: int
    num_points: int


@dataclass(frozen=True)
class Theorem1Result:
    r"""Monte Carlo estimates of Theorem 1 for one fixed encoder.

    Attributes:
        name: Label of the encoder or distribution.
        dim: Feature dimension d.
        tau: Temperature.
        negative_counts: The values of M.
        loss_minus_log_m: Estimates of :math:`L(M) - \log M` (plain mean).
        loss_minus_log_m_std_error: Their standard errors.
        limit: Estimate of the limit as M grows.
        limit_std_error: Its standard error.
        alignment_term: :math:`-\frac1\tau\mathbb{E}[x\cdot y]`, the limit's first term.
        uniformity_term: :math:`\mathbb{E}_y\log\mathbb{E}_{x^-}e^{x^-\cdot y/\tau}`,
            the second.
        gap: Estimates of :math:`L(M) - \log M - \text{limit}` (control variate).
        gap_std_error: Their standard errors.
        first_order_coefficient: :math:`c_1`, so that the gap is about c_1/M.
        first_order_coefficient_std_error: Its standard error.
        fit: Power law fitted to the gap, or None when fewer than 3 values of M
            have a gap clearly above zero.
        final_slope: Slope of log(gap) between the two largest M, the local
            exponent where the curve ends, or None unless both gaps are positive.
            It differs from ``fit.slope`` where the gap is not yet a power law.
        num_pools: Independent pools of negatives.
        anchors_per_pool: Positive pairs that share one pool.
        limit_pairs: Positive pairs behind ``limit`` and ``first_order_coefficient``.
    """

    name: str
    dim: int
    tau: float
    negative_counts: list[int]
    loss_minus_log_m: list[float]
    loss_minus_log_m_std_error: list[float]
    limit: float
    limit_std_error: float
    alignment_term: float
    uniformity_term: float
    gap: list[float]
    gap_std_error: list[float]
    first_order_coefficient: float
    first_order_coefficient_std_error: float
    fit: PowerLawFit | None
    final_slope: float | None
    num_pools: int
    anchors_per_pool: int
    limit_pairs: int

    def to_dict(self) -> dict:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def estimate_theorem1(
    pairs: PairDistribution,
    tau: float,
    *,
    negative_counts: Sequence[int] = DEFAULT_NEGATIVE_COUNTS,
    num_pools: int = 256,
    anchors_per_pool: int = 64,
    limit_pairs: int = 1 << 18,
    fit_min_negatives: int = 64,
    bootstrap_samples: int = 200,
    name: str = "",
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Theorem1Result:
    r"""Estimate :math:`L(M) - \log M`, its limit and the gap for a fixed encoder.

    Each of ``num_pools`` pools draws ``max(negative_counts)`` negatives from
    ``pairs.marginal`` and ``anchors_per_pool`` positive pairs. The first M
    negatives of the pool serve every M, so one pool gives the whole curve.
    Pools are independent, and every standard error is computed over pools.
    All sums are log-sum-exps in float64.

    Args:
        pairs: Positive pairs; negatives come from ``pairs.marginal``, whose
            :meth:`~alignsphere.theory.distributions.SphereDistribution.log_mean_exp_dot`
            must be exact for the control variate to be unbiased.
        tau: Temperature > 0.
        negative_counts: Values of M >= 1. Defaults to 1, 2, 4, ..., 16384.
        num_pools: Independent pools of negatives. Defaults to 256.
        anchors_per_pool: Positive pairs per pool. Defaults to 64.
        limit_pairs: Pairs for the limit and for c_1. Defaults to 262,144.
        fit_min_negatives: Smallest M in the power-law fit. Defaults to 64,
            where the simple cases are already in the 1/M regime.
        bootstrap_samples: Resamples of the pools for the slope's error.
        name: Label stored in the result.
        generator: CPU random generator.
        progress: Show a progress bar over the pools.

    Returns:
        A :class:`Theorem1Result`.

    Raises:
        ValueError: On tau <= 0, an empty or non-positive ``negative_counts``,
            or fewer than 2 pools.
    """
    if not (tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau must be finite and > 0, got {tau!r}")
    counts = sorted({int(m) for m in negative_counts})
    if not counts or counts[0] < 1:
        raise ValueError(
            f"negative_counts must be integers >= 1, got {list(negative_counts)}"
        )
    if num_pools < 2 or anchors_per_pool < 1 or limit_pairs < 2:
        raise ValueError(
            "num_pools must be >= 2, anchors_per_pool >= 1 and limit_pairs >= 2, "
            f"got {num_pools}, {anchors_per_pool} and {limit_pairs}"
        )
    max_count = counts[-1]
    marginal = pairs.marginal

    gap_per_pool = torch.empty(num_pools, len(counts), dtype=torch.float64)
    plain_per_pool = torch.empty(num_pools, len(counts), dtype=torch.float64)
    pools = range(num_pools)
    if progress:
        from tqdm.auto import tqdm

        pools = tqdm(pools, desc=f"Theorem 1 {name}".strip(), unit="pool")
    for pool in pools:
        x, y = pairs.sample(anchors_per_pool, generator)
        negatives = marginal.sample(max_count, generator)
        log_z = marginal.log_mean_exp_dot(y / tau)
        plain, gap = contrastive_terms_by_prefix(x, y, negatives, log_z, tau, counts)
        plain_per_pool[pool] = plain.mean(dim=0)
        gap_per_pool[pool] = gap.mean(dim=0)

    limit = _limit_terms(pairs, tau, limit_pairs, generator)
    gap = gap_per_pool.mean(dim=0)
    gap_se = gap_per_pool.std(dim=0) / math.sqrt(num_pools)
    plain = plain_per_pool.mean(dim=0)
    plain_se = plain_per_pool.std(dim=0) / math.sqrt(num_pools)
    fit = fit_gap_power_law(
        counts,
        gap_per_pool,
        min_negatives=fit_min_negatives,
        bootstrap_samples=bootstrap_samples,
        generator=generator,
    )
    final_slope = None
    if len(counts) >= 2 and gap[-1] > 0 and gap[-2] > 0:
        final_slope = math.log(gap[-1] / gap[-2]) / math.log(counts[-1] / counts[-2])
    return Theorem1Result(
        name=name,
        dim=marginal.dim,
        tau=float(tau),
        negative_counts=counts,
        loss_minus_log_m=plain.tolist(),
        loss_minus_log_m_std_error=plain_se.tolist(),
        limit=limit["limit"],
        limit_std_error=limit["limit_std_error"],
        alignment_term=limit["alignment_term"],
        uniformity_term=limit["uniformity_term"],
        gap=gap.tolist(),
        gap_std_error=gap_se.tolist(),
        first_order_coefficient=limit["c1"],
        first_order_coefficient_std_error=limit["c1_std_error"],
        fit=fit,
        final_slope=final_slope,
        num_pools=num_pools,
        anchors_per_pool=anchors_per_pool,
        limit_pairs=limit_pairs,
    )


def contrastive_terms_by_prefix(
    x: torch.Tensor,
    y: torch.Tensor,
    negatives: torch.Tensor,
    log_z: torch.Tensor,
    tau: float,
    negative_counts: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-anchor loss minus log M, and its control-variate gap, for prefixes of the negatives.

    Anchor a with positive pair (x_a, y_a) meets the first M rows of
    ``negatives`` for every M in ``negative_counts``. With
    :math:`s = x_a \cdot y_a / \tau` and :math:`Z = e^{\text{log\_z}_a}`,

    - ``plain[a, j]`` is :math:`-\log\frac{e^{s}}{e^{s} + \sum_{i \le M} e^{n_i \cdot y_a/\tau}} - \log M`;
    - ``gap[a, j]`` is :math:`\log(1 + r + e) - r` with
      :math:`r = \frac{1}{MZ}\sum_{i \le M} e^{n_i \cdot y_a/\tau} - 1` and
      :math:`e = e^{s}/(MZ)`, whose mean over anchors and negatives is the gap
      :math:`L(M) - \log M - \text{limit}` when Z is the exact
      :math:`\mathbb{E}_{n} e^{n \cdot y_a/\tau}`.

    Sums over negatives are cumulative log-sum-exps in float64.

    Args:
        x: ``(A, d)`` first elements of the positive pairs.
        y: ``(A, d)`` second elements, which the negatives are compared with.
        negatives: ``(max M, d)`` negatives, shared by all anchors.
        log_z: ``(A,)`` values of :math:`\log \mathbb{E}_n e^{n \cdot y_a/\tau}`.
        tau: Temperature > 0.
        negative_counts: Values of M, each at most ``len(negatives)``.

    Returns:
        ``(plain, gap)``, each of shape ``(A, len(negative_counts))``.
    """
    counts = [int(m) for m in negative_counts]
    if min(counts) < 1 or max(counts) > negatives.shape[0]:
        raise ValueError(
            f"negative_counts must lie in [1, {negatives.shape[0]}], got {counts}"
        )
    x, y, negatives = x.double(), y.double(), negatives.double()
    log_z = log_z.double()
    columns = torch.tensor(counts) - 1
    log_counts = torch.tensor(counts, dtype=torch.float64).log()
    positive = (x * y).sum(dim=1) / tau
    # log of (1/M) sum_{i<=M} e^{s_i} / Z(y) for every prefix length M.
    log_cumulative = torch.logcumsumexp(y @ negatives.T / tau - log_z[:, None], 1)
    log_mean_ratio = log_cumulative[:, columns] - log_counts[None, :]
    r = torch.expm1(log_mean_ratio)
    e = torch.exp((positive - log_z)[:, None] - log_counts[None, :])
    deviation = torch.log1p(r + e)
    plain = deviation + (log_z - positive)[:, None]
    return plain, deviation - r


def _limit_terms(
    pairs: PairDistribution,
    tau: float,
    num_pairs: int,
    generator: torch.Generator | None,
) -> dict[str, float]:
    """Estimate the limit, its two terms and c_1 from ``num_pairs`` fresh pairs."""
    marginal = pairs.marginal
    sums = {"align": 0.0, "uniform": 0.0, "limit": 0.0, "limit_sq": 0.0}
    sums.update({"c1": 0.0, "c1_sq": 0.0})
    for start in range(0, num_pairs, _LIMIT_CHUNK):
        count = min(_LIMIT_CHUNK, num_pairs - start)
        x, y = pairs.sample(count, generator)
        positive = (x * y).sum(dim=1) / tau
        log_z = marginal.log_mean_exp_dot(y / tau)
        log_z2 = marginal.log_mean_exp_dot(2 * y / tau)
        integrand = log_z - positive
        c1 = (positive - log_z).exp() - 0.5 * torch.expm1(log_z2 - 2 * log_z)
        sums["align"] += float(-positive.sum())
        sums["uniform"] += float(log_z.sum())
        sums["limit"] += float(integrand.sum())
        sums["limit_sq"] += float(integrand.square().sum())
        sums["c1"] += float(c1.sum())
        sums["c1_sq"] += float(c1.square().sum())
    n = num_pairs
    return {
        "alignment_term": sums["align"] / n,
        "uniformity_term": sums["uniform"] / n,
        "limit": sums["limit"] / n,
        "limit_std_error": _std_error(sums["limit"], sums["limit_sq"], n),
        "c1": sums["c1"] / n,
        "c1_std_error": _std_error(sums["c1"], sums["c1_sq"], n),
    }


def _std_error(total: float, total_sq: float, n: int) -> float:
    mean = total / n
    variance = max(0.0, (total_sq - n * mean**2) / (n - 1))
    return math.sqrt(variance / n)


def fit_gap_power_law(
    negative_counts: Sequence[int],
    gap_per_pool: torch.Tensor,
    *,
    min_negatives: int = 64,
    bootstrap_samples: int = 200,
    generator: torch.Generator | None = None,
) -> PowerLawFit | None:
    """Fit gap = c * M^slope by least squares on log-log axes.

    Only values of M >= ``min_negatives`` whose mean gap exceeds three standard
    errors enter the fit, because the log of a gap that may be zero or negative
    is meaningless. The slope's standard error is the standard deviation over
    bootstrap resamples of the pools (rows of ``gap_per_pool``). The values of
    M share their pools, so their errors are correlated, and the textbook
    least-squares error would be too small.

    Args:
        negative_counts: The K values of M.
        gap_per_pool: ``(P, K)`` gap estimates, one row per independent pool.
        min_negatives: Smallest M in the fit.
        bootstrap_samples: Bootstrap resamples; 0 leaves the error NaN.
        generator: CPU random generator for the resamples.

    Returns:
        A :class:`PowerLawFit`, or None when fewer than 3 values of M qualify.
    """
    counts = torch.tensor(list(negative_counts), dtype=torch.float64)
    num_pools = gap_per_pool.shape[0]
    mean = gap_per_pool.mean(dim=0)
    std_error = gap_per_pool.std(dim=0) / math.sqrt(num_pools)
    selected = (counts >= min_negatives) & (mean > 3 * std_error)
    if int(selected.sum()) < 3:
        return None
    log_m = counts[selected].log()
    slope, intercept = _line(log_m, mean[selected].log())

    slopes = []
    for _ in range(bootstrap_samples):
        rows = torch.randint(0, num_pools, (num_pools,), generator=generator)
        resampled = gap_per_pool[rows][:, selected].mean(dim=0)
        if bool((resampled > 0).all()):
            slopes.append(_line(log_m, resampled.log())[0])
    if len(slopes) < bootstrap_samples:
        logger.debug(
            "%d of %d bootstrap resamples had a gap <= 0 and were skipped",
            bootstrap_samples - len(slopes),
            bootstrap_samples,
        )
    slope_se = float(torch.tensor(slopes).std()) if len(slopes) >= 2 else math.nan
    chosen = counts[selected]
    return PowerLawFit(
        slope=slope,
        slope_std_error=slope_se,
        coefficient=math.exp(intercept),
        min_negatives=int(chosen[0]),
        max_negatives=int(chosen[-1]),
        num_points=int(selected.sum()),
    )


def _line(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    x_centred = x - x.mean()
    slope = float((x_centred * (y - y.mean())).sum() / x_centred.square().sum())
    return slope, float(y.mean() - slope * x.mean())
