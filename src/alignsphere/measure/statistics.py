r"""Row statistics of embeddings, accumulated in one pass over the rows.

:class:`RowStatistics` takes chunks of L2-normalised rows (and the norms they
had before normalisation) and keeps only ``O(d^2)`` state: the row count, the
sum of the unit rows, their scatter matrix :math:`\sum_i x_i x_i^\top` and the
raw norms. From these it derives, exactly and in float64:

- the mean cosine over distinct pairs, :math:`(\lVert\sum_i x_i\rVert^2 - N) /
  (N(N-1))`, without forming any pair;
- the per-dimension standard deviation of the unit rows, averaged over the
  dimensions, a collapse monitor: rows spread uniformly on the sphere give
  about :math:`1/\sqrt d`, rows collapsed to one point give 0;
- the singular values of the (by default centred) unit-row matrix, as square
  roots of the eigenvalues of the ``d x d`` scatter matrix, from which come the
  effective rank (RankMe) and alpha-ReQ;
- the mean, standard deviation, minimum, median and maximum of the raw norms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

# Eigenvalues below this fraction of max(largest eigenvalue, N), times d, are
# rounding noise of the float64 scatter matrix and are set to 0.
_EIGENVALUE_RELATIVE_FLOOR = 10 * np.finfo(np.float64).eps


def effective_rank(singular_values: np.ndarray | torch.Tensor | list[float]) -> float:
    r"""Effective rank (RankMe): the exponential of the entropy of the singular values.

    .. math:: \operatorname{erank} = \exp\Big(-\sum_k p_k \log p_k\Big),
        \quad p_k = \sigma_k / \textstyle\sum_j \sigma_j

    It ranges from 1 (one direction) to the number of nonzero singular values
    (all equal). Zero singular values contribute nothing (``0 log 0 = 0``).
    RankMe as published (arXiv:2210.02885) adds 1e-7 to every ``p_k``; this
    function does not, so its value is the entropy of the spectrum itself.

    Args:
        singular_values: Non-negative singular values, in any order.

    Returns:
        The effective rank, or 0.0 when every singular value is 0.

    Example:
        >>> effective_rank([1.0, 1.0, 1.0, 0.0])
        3.0000000000000004
    """
    values = np.asarray(singular_values, dtype=np.float64)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("singular values must be finite and non-negative")
    total = values.sum()
    if total == 0:
        return 0.0
    p = values[values > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


@dataclass(frozen=True)
class PowerLawFit:
    """A power law ``lambda_k ~ k^(-alpha)`` fitted to an eigenspectrum.

    Attributes:
        alpha: The decay exponent alpha-ReQ.
        first_rank: First rank k (1-based) in the fit.
        last_rank: Last rank k in the fit.
        r_squared: Coefficient of determination of the log-log line.
    """

    alpha: float
    first_rank: int
    last_rank: int
    r_squared: float


def alpha_req(
    eigenvalues: np.ndarray | torch.Tensor | list[float],
    *,
    first_rank: int = 1,
    last_rank: int | None = None,
) -> PowerLawFit | None:
    r"""Fit the eigenspectrum decay exponent alpha-ReQ by least squares on log-log axes.

    Sorts the eigenvalues in decreasing order and fits
    :math:`\log\lambda_k = c - \alpha \log k` over ranks ``first_rank`` to
    ``last_rank`` (1-based), ignoring zero eigenvalues. Smaller alpha means a
    flatter spectrum. The fit range changes the value, so compare values fitted
    over the same ranks; skipping the first few ranks fits the tail only.

    Args:
        eigenvalues: Non-negative eigenvalues of a covariance (or scatter) matrix.
        first_rank: First rank in the fit. Defaults to 1.
        last_rank: Last rank in the fit; defaults to the last nonzero eigenvalue.

    Returns:
        The fit, or None when fewer than two nonzero eigenvalues are in range.

    Example:
        >>> k = np.arange(1, 101)
        >>> round(alpha_req(k ** -1.5).alpha, 6)
        1.5
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("eigenvalues must be finite and non-negative")
    if first_rank < 1:
        raise ValueError(f"first_rank must be >= 1, got {first_rank}")
    ranks = np.arange(1, len(values) + 1)
    last = int(np.count_nonzero(values > 0)) if last_rank is None else int(last_rank)
    if last_rank is not None and last_rank < first_rank:
        raise ValueError(f"last_rank {last_rank} is below first_rank {first_rank}")
    use = (ranks >= first_rank) & (ranks <= last) & (values > 0)
    if np.count_nonzero(use) < 2:
        return None
    log_k = np.log(ranks[use])
    log_value = np.log(values[use])
    slope, intercept = np.polyfit(log_k, log_value, 1)
    residual = log_value - (slope * log_k + intercept)
    spread = ((log_value - log_value.mean()) ** 2).sum()
    # Eigenvalues equal to within rounding lie on a flat line, a perfect fit.
    flat = spread <= 1e-24 * len(log_value)
    r_squared = 1.0 if flat else 1.0 - float((residual**2).sum() / spread)
    used = ranks[use]
    return PowerLawFit(float(-slope), int(used[0]), int(used[-1]), r_squared)


@dataclass(frozen=True)
class NormStatistics:
    """L2 norms of the rows as stored, before normalisation."""

    mean: float
    std: float
    min: float
    median: float
    max: float


@dataclass(frozen=True)
class Spectrum:
    """Singular values of the unit-row matrix and what is derived from them.

    Attributes:
        centered: Whether the mean unit row was subtracted first.
        singular_values: All d singular values, largest first. Those whose
            square is below ``2.2e-15 * d * max(N, largest square)`` are float64
            rounding noise of the scatter matrix and are set to 0.
        effective_rank: RankMe of ``singular_values``.
        alpha_req: Power-law fit to the eigenvalues ``singular_values**2 / (N-1)``
            of the covariance (of the second moment matrix when not centred).
    """

    centered: bool
    singular_values: tuple[float, ...]
    effective_rank: float
    alpha_req: PowerLawFit | None


@dataclass(frozen=True)
class FeatureStatistics:
    """Statistics of a set of embeddings; see :class:`RowStatistics`.

    Attributes:
        num_rows: Number of rows N.
        dim: Number of columns d.
        mean_cosine: Mean cosine similarity over distinct pairs (None if N < 2).
        normalized_std: Per-dimension standard deviation of the unit rows
            (divisor N - 1), averaged over dimensions (None if N < 2).
        normalized_std_reference: ``1/sqrt(d)``, its value for rows spread
            uniformly on the sphere.
        norms: Statistics of the raw row norms.
        spectrum: Singular values, effective rank and alpha-ReQ.
    """

    num_rows: int
    dim: int
    mean_cosine: float | None
    normalized_std: float | None
    normalized_std_reference: float
    norms: NormStatistics
    spectrum: Spectrum
    eigenvectors: np.ndarray | None = field(default=None, repr=False, compare=False)
    mean_row: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """Return the statistics as JSON-ready nested dicts."""
        out = asdict(self)
        out.pop("eigenvectors")
        out.pop("mean_row")
        out["spectrum"]["singular_values"] = list(self.spectrum.singular_values)
        return out


class RowStatistics:
    """Accumulate the statistics of embeddings chunk by chunk in ``O(d^2)`` memory.

    Args:
        dim: Number of columns d.

    Example:
        >>> x = torch.nn.functional.normalize(torch.randn(1000, 8), dim=1)
        >>> stats = RowStatistics(8)
        >>> stats.update(x, torch.ones(1000))
        >>> round(stats.compute().spectrum.effective_rank)
        8
    """

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.count = 0
        self._mean = np.zeros(self.dim, dtype=np.float64)
        # Scatter about the running mean, sum_i (x_i - mean)(x_i - mean)^T. Kept
        # centred (merged chunk by chunk as in Chan, Golub & LeVeque, 1979) so
        # that near-collapsed rows keep their small variances, which the
        # uncentred form sum_i x_i x_i^T - N mean mean^T loses to cancellation.
        self._scatter = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self._norms: list[np.ndarray] = []

    def update(
        self, unit: np.ndarray | torch.Tensor, norms: np.ndarray | torch.Tensor
    ) -> None:
        """Add a chunk of rows.

        Args:
            unit: ``(n, d)`` L2-normalised rows (cast to float64 here).
            norms: ``(n,)`` norms of the same rows before normalisation.
        """
        unit = _float64_numpy(unit)
        if unit.ndim != 2 or unit.shape[1] != self.dim:
            raise ValueError(
                f"expected rows of shape (n, {self.dim}), got {unit.shape}"
            )
        size = unit.shape[0]
        if size == 0:
            return
        chunk_mean = unit.mean(axis=0)
        # torch's matrix product (MKL) keeps its speed when other processes
        # compete for the cores, where OpenBLAS's threads slow down several-fold.
        centred = torch.from_numpy(unit - chunk_mean)
        total = self.count + size
        delta = chunk_mean - self._mean
        self._scatter.addmm_(centred.T, centred)
        self._scatter += torch.from_numpy(
            np.outer(delta, delta) * (self.count * size / total)
        )
        self._mean += (chunk_mean - self._mean) * (size / total)
        self.count = total
        # float32 halves the memory of a million norms; the statistics of the
        # norms are computed in float64.
        self._norms.append(_float64_numpy(norms).reshape(-1).astype(np.float32))

    def update_raw(self, features: np.ndarray | torch.Tensor) -> None:
        """Add a chunk of raw features; they are L2-normalised here.

        Raises:
            ValueError: a row contains NaN or infinite values, or is all zeros.
        """
        values = _float64_numpy(features)
        if not np.isfinite(values).all():
            raise ValueError("features contain NaN or infinite values")
        norms = np.sqrt(np.einsum("ij,ij->i", values, values))
        if (norms == 0).any():
            raise ValueError("features contain zero rows, which cannot be normalised")
        self.update(values / norms[:, None], norms)

    def compute(
        self,
        *,
        center: bool = True,
        first_rank: int = 1,
        last_rank: int | None = None,
    ) -> FeatureStatistics:
        """Return the statistics of every row added so far.

        Args:
            center: Take the spectrum of the centred unit rows (the covariance,
                as alpha-ReQ defines it) instead of the raw unit rows (as RankMe
                defines it). Defaults to True, because the mean direction is
                already reported by the mean cosine and would otherwise
                dominate the first singular value.
            first_rank: First rank of the alpha-ReQ fit.
            last_rank: Last rank of the alpha-ReQ fit; defaults to the last
                nonzero eigenvalue.
        """
        n = self.count
        if n == 0:
            raise ValueError("no rows were added")
        d = self.dim
        mean = self._mean
        scatter = self._scatter.numpy()
        diagonal = scatter.diagonal()
        mean_cosine = normalized_std = None
        if n > 1:
            # sum_{i != j} x_i.x_j = ||sum_i x_i||^2 - sum_i ||x_i||^2
            #                      = N(N-1) ||mean||^2 - trace(centred scatter).
            mean_cosine = float(mean @ mean) - float(diagonal.sum()) / (n * (n - 1))
            normalized_std = float(np.sqrt(diagonal / (n - 1)).mean())

        matrix = scatter if center else scatter + n * np.outer(mean, mean)
        eigenvalues, eigenvectors = _symmetric_eigh(matrix)
        eigenvalues = np.maximum(eigenvalues[::-1], 0)
        eigenvectors = eigenvectors[:, ::-1]
        # Unit rows put at most N on the diagonal, so N is the scale of rounding.
        floor = max(float(eigenvalues[0]), n) * d * _EIGENVALUE_RELATIVE_FLOOR
        eigenvalues[eigenvalues <= floor] = 0
        singular = np.sqrt(eigenvalues)
        covariance = eigenvalues / max(n - 1, 1)
        fit = alpha_req(covariance, first_rank=first_rank, last_rank=last_rank)

        norms = np.concatenate(self._norms).astype(np.float64)
        return FeatureStatistics(
            num_rows=n,
            dim=d,
            mean_cosine=mean_cosine,
            normalized_std=normalized_std,
            normalized_std_reference=1 / math.sqrt(d),
            norms=NormStatistics(
                mean=float(norms.mean()),
                std=float(norms.std(ddof=1)) if n > 1 else 0.0,
                min=float(norms.min()),
                median=float(np.median(norms)),
                max=float(norms.max()),
            ),
            spectrum=Spectrum(
                centered=center,
                singular_values=tuple(float(v) for v in singular),
                effective_rank=effective_rank(singular),
                alpha_req=fit,
            ),
            eigenvectors=eigenvectors[:, :2].copy(),
            mean_row=mean.copy(),
        )


def _symmetric_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``np.linalg.eigh(matrix)``, run on one BLAS thread when possible.

    numpy's LAPACK leaves about 15 MB less library code resident than torch's
    (MKL) for this call. A d x d matrix is too small to gain from threads, and
    OpenBLAS threads slow down many times over when other processes compete
    for the cores, so threadpoolctl (a scikit-learn dependency) limits them to
    one when it is installed.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return np.linalg.eigh(matrix)
    with threadpool_limits(limits=1, user_api="blas"):
        return np.linalg.eigh(matrix)


def _float64_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def feature_statistics(
    features: torch.Tensor,
    *,
    center: bool = True,
    first_rank: int = 1,
    last_rank: int | None = None,
    chunk_rows: int = 8192,
) -> FeatureStatistics:
    """Compute :class:`FeatureStatistics` of a tensor of raw features.

    Args:
        features: ``(N, d)`` features; rows are L2-normalised here.
        center: Spectrum of the centred unit rows; see :meth:`RowStatistics.compute`.
        first_rank: First rank of the alpha-ReQ fit.
        last_rank: Last rank of the alpha-ReQ fit.
        chunk_rows: Rows processed at a time.

    Example:
        >>> x = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
        >>> stats = feature_statistics(x)
        >>> round(stats.mean_cosine, 6), stats.norms.max
        (-0.333333, 3.0)
    """
    if features.dim() != 2:
        raise ValueError(
            f"features must have shape (N, d), got {tuple(features.shape)}"
        )
    statistics = RowStatistics(features.shape[1])
    for start in range(0, features.shape[0], chunk_rows):
        statistics.update_raw(features[start : start + chunk_rows])
    return statistics.compute(center=center, first_rank=first_rank, last_rank=last_rank)
