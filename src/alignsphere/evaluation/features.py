"""Frozen features of an encoder: eval mode, no augmentation, same on every call."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

#: Layer name that selects the backbone features before the projection head,
#: whatever the encoder calls that stage (``Encoder.feature_layer``).
POOLED_LAYER = "pooled"
OUTPUT_LAYER = "output"


@contextlib.contextmanager
def eval_mode(module: nn.Module, *, no_grad: bool = True) -> Iterator[nn.Module]:
    """Put every submodule in eval mode inside the block, then restore each flag.

    Restoring submodule by submodule keeps a mixed state intact, such as a
    frozen backbone in eval mode under a head in train mode. With ``no_grad``
    (the default), gradients are disabled inside the block.
    """
    flags = [(child, child.training) for child in module.modules()]
    module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield module
    finally:
        for child, training in flags:
            child.training = training


def resolve_layer(encoder: nn.Module, layer: str) -> str:
    """Return the stage name that ``layer`` selects in ``encoder``.

    ``"output"`` is the L2-normalised output, ``"pooled"`` the backbone features
    before the head (``encoder.feature_layer``), and any other name must be one
    of ``encoder.layer_names`` (``"fc7"`` on the AlexNet variant).

    Raises:
        ValueError: If the encoder has no such layer; the message lists its layers.
    """
    if layer == OUTPUT_LAYER:
        return layer
    names = tuple(getattr(encoder, "layer_names", (OUTPUT_LAYER,)))
    if layer == POOLED_LAYER and hasattr(encoder, "feature_layer"):
        return str(encoder.feature_layer)
    if layer in names:
        return layer
    valid = sorted(
        {OUTPUT_LAYER, *names} | ({POOLED_LAYER} if len(names) > 1 else set())
    )
    raise ValueError(
        f"{type(encoder).__name__} has no layer {layer!r}; valid layers: "
        f"{', '.join(valid)}"
    )


def forward_layer(encoder: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """Run ``encoder`` up to a stage name from :func:`resolve_layer`."""
    if layer == OUTPUT_LAYER:
        return encoder(images)
    return encoder.forward_features(images, layer)


def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    layer: str = OUTPUT_LAYER,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Compute the features of a layer for every image, in eval mode.

    Batch norm uses its running statistics and dropout is off, so the features
    of an image do not depend on the batch it is in, and two calls return the
    same values. The encoder's train/eval flags are restored afterwards and its
    weights and buffers are left unchanged.

    Args:
        encoder: An :class:`~alignsphere.models.Encoder` (or any module whose
            ``forward`` gives the output; other layers need ``forward_features``).
        images: ``(N, C, H, W)`` images, uint8 or float, on any device.
        transform: Deterministic preprocessing of a batch (resize, crop,
            normalisation), such as a preset's ``eval_transform()``; None feeds
            float images as they are and uint8 images divided by 255.
        layer: ``"output"``, ``"pooled"`` or a stage name; see :func:`resolve_layer`.
        batch_size: Images per forward pass.
        device: Device to run on; defaults to the encoder's.

    Returns:
        ``(N, D)`` float32 features on the CPU, flattened after dimension 0.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    stage = resolve_layer(encoder, layer)
    if device is None:
        parameter = next(encoder.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    chunks = []
    with eval_mode(encoder):
        for start in range(0, images.shape[0], int(batch_size)):
            batch = images[start : start + int(batch_size)].to(device)
            if transform is not None:
                batch = transform(batch)
            elif batch.dtype == torch.uint8:
                batch = batch.float().div_(255)
            features = forward_layer(encoder, batch, stage)
            chunks.append(features.flatten(1).float().cpu())
    if not chunks:
        raise ValueError("images is empty; there is nothing to encode")
    return torch.cat(chunks)


def encode_views(
    encoder: nn.Module,
    images: torch.Tensor,
    augmentation: Callable[..., torch.Tensor],
    *,
    seed: int = 0,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode two augmented views of every image, in eval mode, with a fixed seed.

    The views form positive pairs for alignment on held-out data. Their random
    parameters come from one CPU generator seeded with ``seed`` and drawn batch
    by batch in order, so a given seed and batch size give the same views.

    Args:
        encoder: The encoder; its output is used.
        images: ``(N, C, H, W)`` uint8 images.
        augmentation: A :class:`~alignsphere.data.BatchAugmentation`, called as
            ``augmentation(batch, generator)``.
        seed: Seed of the views.
        batch_size: Images per forward pass.
        device: Device to run on; defaults to the encoder's.

    Returns:
        Output features ``(N, d)`` of the first and of the second view, on the CPU.
    """
    generator = torch.Generator().manual_seed(seed)
    if device is None:
        parameter = next(encoder.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    first, second = [], []
    with eval_mode(encoder):
        for start in range(0, images.shape[0], int(batch_size)):
            batch = images[start : start + int(batch_size)].to(device)
            view1 = augmentation(batch, generator)
            view2 = augmentation(batch, generator)
            first.append(encoder(view1).float().cpu())
            second.append(encoder(view2).float().cpu())
    if not first:
        raise ValueError("images is empty; there is nothing to encode")
    return torch.cat(first), torch.cat(second)
