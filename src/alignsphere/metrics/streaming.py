"""torchmetrics classes that accumulate alignment and uniformity over a dataset.

Alignment is a mean over pairs, so a running sum and count, summed across
ranks, give the dataset value. Uniformity is the log of a mean over all pairs
of the dataset, which is not the average of per-batch uniformities, so
:class:`Uniformity` keeps every feature (gathered across ranks by torchmetrics)
and computes the exact all-pairs value once, in :meth:`Uniformity.compute`.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from alignsphere._numerics import safe_pow_half
from alignsphere._validation import check_features, check_pair, check_positive
from alignsphere.metrics.functional import uniformity, uniformity_optimum


class Alignment(Metric):
    r"""Dataset alignment :math:`\frac1N \sum_i \lVert x_i - y_i \rVert^\alpha`.

    Args:
        alpha: Exponent > 0. Defaults to 2.
        normalize: L2-normalise rows in :meth:`update` instead of requiring unit rows.

    Example:
        >>> metric = Alignment()
        >>> x = torch.eye(2)
        >>> metric.update(x, x)
        >>> float(metric.compute())
        0.0
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    sum_value: torch.Tensor
    count: torch.Tensor

    def __init__(
        self, alpha: float = 2.0, *, normalize: bool = False, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.alpha = check_positive("alpha", alpha)
        self.normalize = normalize
        self.add_state(
            "sum_value", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add a batch of row-aligned positive pairs ``(N, d)``."""
        x, y = check_pair(x.detach(), y.detach(), normalize=self.normalize)
        sq = (x.double() - y.double()).pow(2).sum(dim=1)
        self.sum_value += safe_pow_half(sq, self.alpha).sum()
        self.count += x.shape[0]

    def compute(self) -> torch.Tensor:
        """Return the mean over every pair seen, on every rank."""
        if int(self.count) == 0:
            raise ValueError("Alignment.compute() called before any update()")
        return self.sum_value / self.count


class Uniformity(Metric):
    r"""Exact dataset uniformity over all distinct pairs of every row seen.

    .. math:: L_\text{uniform} = \log \frac{2}{N(N-1)} \sum_{i<j}
        e^{-t \lVert x_i - x_j \rVert^2}

    Rows from every :meth:`update` call and every rank are concatenated, so the
    pairs that cross batches count exactly once, as they would for the whole
    dataset in one tensor. Memory is ``N x d`` floats for the features kept.

    Args:
        t: Scale > 0. Defaults to 2.
        normalize: L2-normalise rows in :meth:`update` instead of requiring unit rows.

    Example:
        >>> metric = Uniformity()
        >>> metric.update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        >>> metric.update(torch.tensor([[0.0, 1.0]]))
        >>> round(float(metric.compute()), 6)
        -1.062636
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    features: list[torch.Tensor]

    def __init__(self, t: float = 2.0, *, normalize: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.t = check_positive("t", t)
        self.normalize = normalize
        self.add_state("features", default=[], dist_reduce_fx="cat")

    def update(self, x: torch.Tensor) -> None:
        """Add a batch of features ``(N, d)``; a batch of one row is fine."""
        self.features.append(check_features(x.detach(), "x", normalize=self.normalize))

    def compute(self) -> torch.Tensor:
        """Return the exact uniformity of all rows seen, on every rank."""
        rows = self._rows()
        if rows.shape[0] < 2:
            raise ValueError(
                f"Uniformity.compute() needs at least 2 rows in total, got {rows.shape[0]}"
            )
        return torch.tensor(uniformity(rows, self.t), dtype=torch.float64)

    def optimum(self) -> float:
        """Return the population optimum for the feature dimension seen so far."""
        return uniformity_optimum(self._rows().shape[1], self.t)

    def _rows(self) -> torch.Tensor:
        # A list of batches before synchronisation, one tensor after it.
        if isinstance(self.features, list) and not self.features:
            return torch.empty(0, 0)
        return dim_zero_cat(self.features)
