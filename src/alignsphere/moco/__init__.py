"""MoCo with alignment and uniformity: momentum key encoder, key queue, shuffle-BN.

:class:`MoCo` (the nn.Module core), the shuffle-BN helpers and the checkpoint
key mapping import torch alone. :class:`MoCoModule`, the Lightning wrapper that
``alignsphere train`` uses for ``method: moco``, is imported on first access,
so ``from alignsphere.moco import MoCo`` works without Lightning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alignsphere.moco.checkpoint import (
    BackboneKeyError,
    load_backbone_weights,
    map_checkpoint_keys,
    strip_prefixes,
)
from alignsphere.moco.core import MoCo, MoCoOutput, has_batch_norm
from alignsphere.moco.shuffle_bn import forward_in_splits, shuffled_forward

if TYPE_CHECKING:
    from alignsphere.moco.module import MoCoModule

__all__ = [
    "BackboneKeyError",
    "MoCo",
    "MoCoModule",
    "MoCoOutput",
    "forward_in_splits",
    "has_batch_norm",
    "load_backbone_weights",
    "map_checkpoint_keys",
    "shuffled_forward",
    "strip_prefixes",
]


def __getattr__(name: str) -> Any:
    if name == "MoCoModule":
        from alignsphere.moco.module import MoCoModule

        return MoCoModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
