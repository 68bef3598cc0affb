"""Differentiable losses: alignment, uniformity, contrastive, and their sums."""

from alignsphere.losses.align_uniform import (
    AlignLoss,
    UniformLoss,
    UniformQueueLoss,
    align_loss,
    uniform_loss,
    uniform_queue_loss,
)
from alignsphere.losses.contrastive import (
    ContrastiveLoss,
    ContrastiveQueueLoss,
    contrastive_loss,
    contrastive_queue_loss,
    nt_xent_loss,
)
from alignsphere.losses.objective import (
    TERMS,
    Objective,
    ObjectiveOutput,
    Term,
    parse_objective,
    parse_terms,
)
from alignsphere.losses.quick_thought import QuickThoughtLoss, quick_thought_loss

__all__ = [
    "TERMS",
    "AlignLoss",
    "ContrastiveLoss",
    "ContrastiveQueueLoss",
    "Objective",
    "ObjectiveOutput",
    "QuickThoughtLoss",
    "Term",
    "UniformLoss",
    "UniformQueueLoss",
    "align_loss",
    "contrastive_loss",
    "contrastive_queue_loss",
    "nt_xent_loss",
    "parse_objective",
    "parse_terms",
    "quick_thought_loss",
    "uniform_loss",
    "uniform_queue_loss",
]
