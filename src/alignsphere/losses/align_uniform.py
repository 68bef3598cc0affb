"""Alignment and uniformity losses (Wang & Isola, ICML 2020, arXiv:2005.10242).

Both take L2-normalised features. They work in float32 or wider even under
autocast, use squared distances without square roots, and compute uniformity
with a log-sum-exp, so they stay finite for identical rows, large t and
half-precision inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from alignsphere._numerics import autocast_disabled, pairwise_sq_dists, safe_pow_half
from alignsphere._validation import check_features, check_pair, check_positive
from alignsphere.distributed import gather_with_grad


def align_loss(
    x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, *, normalize: bool = False
) -> torch.Tensor:
    r"""Alignment loss of positive pairs.

    .. math:: L_\text{align} = \frac{1}{N} \sum_i \lVert x_i - y_i \rVert_2^\alpha

    For ``alpha < 2`` the norm has no gradient at 0; identical pairs get the
    subgradient 0.

    Args:
        x: ``(N, d)`` unit rows, the first view of each pair.
        y: ``(N, d)`` unit rows, the second view.
        alpha: Exponent > 0. Defaults to 2, the paper's choice for every setting.
        normalize: L2-normalise the rows here instead of requiring unit rows.

    Returns:
        Scalar tensor that carries gradients.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> align_loss(x, x.flip(1))
        tensor(2.)
    """
    alpha = check_positive("alpha", alpha)
    with autocast_disabled(x):
        x, y = check_pair(x, y, normalize=normalize)
        sq = (x - y).pow(2).sum(dim=1)
        return safe_pow_half(sq, alpha).mean()


# exp(-80) = 1.8e-35 is a normal float32, so while t * max(sq) = 4t <= 80 the
# exponentials can be summed directly; larger t takes the log-sum-exp path,
# which clamps each squared distance at 0.
_DIRECT_SUM_MAX_EXPONENT = 80.0


def _log_mean_exp_offdiag(x: torch.Tensor, t: float) -> torch.Tensor:
    """Return log of the mean of ``exp(-t ||x_i - x_j||^2)`` over i != j."""
    n = x.shape[0]
    sq_norms = x.pow(2).sum(dim=1)
    if 4 * t <= _DIRECT_SUM_MAX_EXPONENT:
        # -t ||x_i - x_j||^2 = 2t (x_i.x_j - 1) - t (|x_i|^2 - 1) - t (|x_j|^2 - 1),
        # so the sum is a^T E a with E = exp(2t (G - 1)) and a = exp(-t (|x|^2 - 1)).
        # Every entry of E lies in [e^{-4t}, ~1], so nothing overflows or
        # underflows, and the n x n work is one product and one exp.
        exponent = torch.addmm(x.new_full((1, 1), -2 * t), x, x.T, alpha=2 * t)
        # Drop i == j before the exp (addmm keeps nothing for backward, so the
        # in-place fill is allowed); subtracting them afterwards would cancel
        # catastrophically when the diagonal dominates the sum.
        exponent.diagonal().fill_(-math.inf)
        kernel = exponent.exp()
        scale = torch.exp(-t * (sq_norms - 1))
        total = (kernel @ scale) @ scale
        # Each term is at most 1; rounding of near-identical rows can put the
        # mean a few ulp above it, so clamp to keep the log at most 0.
        mean = (total / (n * (n - 1))).clamp_max(1)
        return mean.log()
    logits = torch.addmm(
        (sq_norms[:, None] + sq_norms[None, :]).mul(-t), x, x.T, alpha=2 * t
    ).clamp_max(0)
    # Mask the pairs i == i in place: clamp's backward keeps its input, not
    # this output, so autograd allows it, and exp(-inf) = 0 drops them exactly.
    logits.diagonal().fill_(-math.inf)
    return torch.logsumexp(logits.flatten(), dim=0) - math.log(n * (n - 1))


def uniform_loss(
    x: torch.Tensor,
    t: float = 2.0,
    *,
    normalize: bool = False,
    gather: bool = False,
) -> torch.Tensor:
    r"""Uniformity loss over all distinct pairs of a batch.

    .. math:: L_\text{uniform} = \log \frac{2}{N(N-1)} \sum_{i<j}
        e^{-t \lVert x_i - x_j \rVert_2^2}

    Squared distances come from one matrix product, clamped at 0, with no
    square root, so identical rows keep finite gradients. The sum is a
    log-sum-exp, so large t does not underflow to -inf.

    Args:
        x: ``(N, d)`` unit rows, N >= 2.
        t: Scale > 0. Defaults to 2, the paper's value for images and text.
        normalize: L2-normalise the rows here instead of requiring unit rows.
        gather: Under ``torch.distributed``, compute the loss over the rows of
            every rank (with gradients to all of them) instead of the local rows.

    Returns:
        Scalar tensor that carries gradients.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> round(float(uniform_loss(x, t=2)), 6)
        -1.062636
    """
    t = check_positive("t", t)
    with autocast_disabled(x):
        x = check_features(x, "x", normalize=normalize, min_rows=1 if gather else 2)
        if gather:
            x, _ = gather_with_grad(x)
            if x.shape[0] < 2:
                raise ValueError("uniformity needs at least 2 rows over all ranks")
        return _log_mean_exp_offdiag(x, t)


def uniform_queue_loss(
    q: torch.Tensor,
    queue: torch.Tensor,
    t: float = 2.0,
    *,
    intra_batch: bool = True,
    normalize: bool = False,
    gather: bool = False,
) -> torch.Tensor:
    r"""Uniformity of a batch of queries against a queue of keys (MoCo).

    The mean runs over the multiset of squared distances
    :math:`\{\lVert q_i - k_m \rVert^2\}` for every query i and queue entry m,
    plus, when ``intra_batch`` is set, :math:`\{\lVert q_i - q_j \rVert^2, i<j\}`:

    .. math:: L = \log \frac{1}{NK + [\text{intra}] N(N-1)/2}
        \Big( \sum_{i,m} e^{-t \lVert q_i - k_m \rVert^2}
        + [\text{intra}] \sum_{i<j} e^{-t \lVert q_i - q_j \rVert^2} \Big)

    Args:
        q: ``(N, d)`` unit queries, which carry gradients.
        queue: ``(K, d)`` unit keys; treated as constants (detach them).
        t: Scale > 0. Defaults to 2; the paper's ImageNet-100 recipe uses 3.
        intra_batch: Include the query-to-query pairs. Defaults to True.
        normalize: L2-normalise the rows here instead of requiring unit rows.
        gather: Under ``torch.distributed``, take the intra-batch pairs over the
            queries of every rank; False keeps them per rank.

    Returns:
        Scalar tensor that carries gradients.
    """
    t = check_positive("t", t)
    with autocast_disabled(q):
        q = check_features(q, "q", normalize=normalize)
        queue = check_features(queue, "queue", normalize=normalize).to(q.dtype)
        if queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"q has d={q.shape[1]} but queue has d={queue.shape[1]}; both must "
                "come from the same encoder head"
            )
        to_queue = (-t * pairwise_sq_dists(q, queue)).flatten()
        log_sum = torch.logsumexp(to_queue, dim=0)
        count = to_queue.numel()
        if intra_batch:
            queries, _ = gather_with_grad(q) if gather else (q, 0)
            n = queries.shape[0]
            if n >= 2:
                intra = _log_mean_exp_offdiag(queries, t)
                # Back from a mean over i != j to a sum over i < j.
                intra_sum = intra + math.log(n * (n - 1) / 2)
                log_sum = torch.logaddexp(log_sum, intra_sum)
                count += n * (n - 1) // 2
        return log_sum - math.log(count)


class AlignLoss(nn.Module):
    """Module form of :func:`align_loss`."""

    def __init__(self, alpha: float = 2.0, *, normalize: bool = False) -> None:
        super().__init__()
        self.alpha = check_positive("alpha", alpha)
        self.normalize = normalize

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return align_loss(x, y, self.alpha, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


class UniformLoss(nn.Module):
    """Module form of :func:`uniform_loss`."""

    def __init__(
        self, t: float = 2.0, *, normalize: bool = False, gather: bool = False
    ) -> None:
        super().__init__()
        self.t = check_positive("t", t)
        self.normalize = normalize
        self.gather = gather

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return uniform_loss(x, self.t, normalize=self.normalize, gather=self.gather)

    def extra_repr(self) -> str:
        return f"t={self.t:g}, gather={self.gather}"


class UniformQueueLoss(nn.Module):
    """Module form of :func:`uniform_queue_loss`."""

    def __init__(
        self,
        t: float = 2.0,
        *,
        intra_batch: bool = True,
        normalize: bool = False,
        gather: bool = False,
    ) -> None:
        super().__init__()
        self.t = check_positive("t", t)
        self.intra_batch = intra_batch
        self.normalize = normalize
        self.gather = gather

    def forward(self, q: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        return uniform_queue_loss(
            q,
            queue,
            self.t,
            intra_batch=self.intra_batch,
            normalize=self.normalize,
            gather=self.gather,
        )

    def extra_repr(self) -> str:
        return f"t={self.t:g}, intra_batch={self.intra_batch}"
