"""Contrastive (InfoNCE) losses: the in-batch NT-Xent form and the MoCo queue form.

Both are log-softmax cross-entropies, which never overflow at small
temperatures. The queue form computes each query's term
``-log(e^{s_+} / (e^{s_+} + sum_k e^{s_k}))`` as
``softplus(logsumexp_k(s_k - s_+))``, the same quantity written so that a
nearly perfect query returns its true tiny value (3.7e-44 for a margin of
100) instead of 0; the in-batch form uses PyTorch's fused cross-entropy,
which is faster at batch sizes of hundreds and rounds such a term to 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from alignsphere._numerics import autocast_disabled
from alignsphere._validation import check_features, check_pair, check_positive
from alignsphere.distributed import gather_with_grad


def contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    tau: float = 0.5,
    *,
    normalize: bool = False,
    gather: bool = False,
) -> torch.Tensor:
    r"""Symmetric in-batch contrastive loss (NT-Xent, SimCLR).

    Every one of the 2N rows is an anchor. Its positive is the other view of
    the same sample, and its negatives are the remaining 2N - 2 rows; the
    anchor's similarity with itself is masked out, not subtracted.

    .. math:: L = \frac{1}{2N} \sum_a -\log
        \frac{e^{z_a \cdot z_{p(a)} / \tau}}{\sum_{b \ne a} e^{z_a \cdot z_b / \tau}}

    Args:
        z1: ``(N, d)`` unit rows, first view.
        z2: ``(N, d)`` unit rows, second view; row i is the positive of z1's row i.
        tau: Temperature > 0. Defaults to 0.5, SimCLR's CIFAR-10 value.
        normalize: L2-normalise the rows here instead of requiring unit rows.
        gather: Under ``torch.distributed``, take negatives from the rows of
            every rank. The local 2N anchors are averaged, so the DDP mean over
            ranks equals one process holding the global batch.

    Returns:
        Scalar tensor that carries gradients.

    Example:
        >>> z = torch.eye(2)
        >>> round(float(contrastive_loss(z, z, tau=1.0)), 7)  # log(1 + 2/e)
        0.5514447
    """
    tau = check_positive("tau", tau)
    with autocast_disabled(z1):
        z1, z2 = check_pair(z1, z2, normalize=normalize, names=("z1", "z2"))
        n = z1.shape[0]
        if gather:
            all1, offset = gather_with_grad(z1)
            all2, _ = gather_with_grad(z2)
        else:
            all1, all2, offset = z1, z2, 0
        total = all1.shape[0]
        if total < 2:
            raise ValueError(
                f"contrastive loss needs at least 2 pairs (N >= 2) to have a "
                f"negative, got {total}"
            )
        candidates = torch.cat([all1, all2])
        anchors = torch.cat([z1, z2])
        logits = anchors @ candidates.T / tau

        local = torch.arange(n, device=z1.device)
        rows = torch.arange(2 * n, device=z1.device)
        self_index = torch.cat([offset + local, total + offset + local])
        positive = torch.cat([total + offset + local, offset + local])
        # In place is safe: dividing by a constant keeps nothing for backward.
        logits.index_put_(
            (rows, self_index), torch.tensor(-torch.inf, dtype=logits.dtype)
        )
        return F.cross_entropy(logits, positive)


nt_xent_loss = contrastive_loss


def contrastive_queue_loss(
    q: torch.Tensor,
    k: torch.Tensor,
    queue: torch.Tensor,
    tau: float = 0.07,
    *,
    normalize: bool = False,
) -> torch.Tensor:
    r"""Contrastive loss of queries against their keys and a queue of negatives (MoCo).

    .. math:: L = \frac{1}{N} \sum_i -\log \frac{e^{q_i \cdot k_i / \tau}}
        {e^{q_i \cdot k_i / \tau} + \sum_m e^{q_i \cdot \kappa_m / \tau}}

    Args:
        q: ``(N, d)`` unit queries, which carry gradients.
        k: ``(N, d)`` unit keys of the same images (from the momentum encoder).
        queue: ``(K, d)`` unit keys of earlier batches, the negatives.
        tau: Temperature > 0. Defaults to 0.07, MoCo's value.
        normalize: L2-normalise the rows here instead of requiring unit rows.

    Returns:
        Scalar tensor that carries gradients.
    """
    tau = check_positive("tau", tau)
    with autocast_disabled(q):
        q, k = check_pair(q, k, normalize=normalize, names=("q", "k"))
        queue = check_features(queue, "queue", normalize=normalize).to(q.dtype)
        if queue.shape[1] != q.shape[1]:
            raise ValueError(
                f"q has d={q.shape[1]} but queue has d={queue.shape[1]}; both must "
                "come from the same encoder head"
            )
        pos = (q * k).sum(dim=1, keepdim=True) / tau
        neg = q @ queue.T / tau
        return F.softplus(torch.logsumexp(neg - pos, dim=1)).mean()


class ContrastiveLoss(nn.Module):
    """Module form of :func:`contrastive_loss`."""

    def __init__(
        self, tau: float = 0.5, *, normalize: bool = False, gather: bool = False
    ) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau)
        self.normalize = normalize
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(
            z1, z2, self.tau, normalize=self.normalize, gather=self.gather
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, gather={self.gather}"


class ContrastiveQueueLoss(nn.Module):
    """Module form of :func:`contrastive_queue_loss`."""

    def __init__(self, tau: float = 0.07, *, normalize: bool = False) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau)
        self.normalize = normalize

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor
    ) -> torch.Tensor:
        return contrastive_queue_loss(q, k, queue, self.tau, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}"
