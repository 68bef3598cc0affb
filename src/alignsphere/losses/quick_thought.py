r"""The quick-thought loss: pick the neighbouring sentence among the batch.

Quick-thought (Logeswaran & Lee, "An efficient framework for learning sentence
representations", ICLR 2018, arXiv:1803.02893) trains an input encoder f and
a context encoder g on a batch of consecutive sentences. For sentence
:math:`s_i` it scores every other sentence c of the batch by
:math:`f(s_i) \cdot g(c)`, takes a softmax over them, and maximises the
log-probability of the two true neighbours :math:`s_{i-1}` and :math:`s_{i+1}`.

Here one encoder f plays both roles, the rows are unit vectors with a
temperature, and a batch contains N adjacent pairs :math:`(s_i, s_{i+1})` drawn
from anywhere in the corpus. Then "predict the next sentence from the first of
a pair" and "predict the previous sentence from the second" are two
cross-view InfoNCE losses, and :func:`quick_thought_loss` is their mean: a
symmetric InfoNCE whose candidates are the other view's N rows only. It
differs from :func:`~alignsphere.losses.contrastive_loss` (NT-Xent), whose
2N - 2 negatives include rows of the anchor's own view.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from alignsphere._numerics import autocast_disabled
from alignsphere._validation import check_pair, check_positive
from alignsphere.distributed import gather_with_grad


def quick_thought_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    tau: float = 0.1,
    *,
    normalize: bool = False,
    gather: bool = False,
) -> torch.Tensor:
    r"""Symmetric cross-view InfoNCE of adjacent sentences (quick-thought).

    With :math:`S = z_1 z_2^\top / \tau` (row i of z1 is sentence
    :math:`s_i`, row i of z2 is :math:`s_{i+1}`):

    .. math:: L = \frac{1}{2N} \sum_i \Big[
        -\log \frac{e^{S_{ii}}}{\sum_j e^{S_{ij}}}
        -\log \frac{e^{S_{ii}}}{\sum_j e^{S_{ji}}} \Big]

    The first term classifies the next sentence among the N second sentences
    of the batch, and the second classifies the previous sentence among the N
    first sentences.

    Args:
        z1: ``(N, d)`` unit rows, the first sentence of each pair.
        z2: ``(N, d)`` unit rows, the following sentence.
        tau: Temperature > 0. Defaults to 0.1, this library's choice:
            quick-thought itself uses unnormalised inner products and no
            temperature.
        normalize: L2-normalise the rows here instead of requiring unit rows.
        gather: Under ``torch.distributed``, take candidates from the rows of
            every rank. The local 2N terms are averaged, so the DDP mean over
            ranks equals one process holding the global batch.

    Returns:
        Scalar tensor that carries gradients.

    Example:
        >>> z = torch.eye(2)
        >>> round(float(quick_thought_loss(z, z, tau=1.0)), 7)  # log(1 + 1/e)
        0.3132617
    """
    tau = check_positive("tau", tau)
    with autocast_disabled(z1):
        z1, z2 = check_pair(z1, z2, normalize=normalize, names=("z1", "z2"))
        if gather:
            all1, offset = gather_with_grad(z1)
            all2, _ = gather_with_grad(z2)
        else:
            all1, all2, offset = z1, z2, 0
        if all1.shape[0] < 2:
            raise ValueError(
                "quick-thought loss needs at least 2 pairs (N >= 2) to have a "
                f"candidate besides the neighbour, got {all1.shape[0]}"
            )
        targets = offset + torch.arange(z1.shape[0], device=z1.device)
        forward = F.cross_entropy(z1 @ all2.T / tau, targets)
        backward = F.cross_entropy(z2 @ all1.T / tau, targets)
        return (forward + backward) / 2


class QuickThoughtLoss(nn.Module):
    """Module form of :func:`quick_thought_loss`."""

    def __init__(
        self, tau: float = 0.1, *, normalize: bool = False, gather: bool = False
    ) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau)
        self.normalize = normalize
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return quick_thought_loss(
            z1, z2, self.tau, normalize=self.normalize, gather=self.gather
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau:g}, gather={self.gather}"
