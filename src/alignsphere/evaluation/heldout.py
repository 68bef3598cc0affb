"""Alignment and uniformity of an encoder on held-out images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from alignsphere.evaluation.features import encode_views, extract_features
from alignsphere.metrics import alignment, uniformity, uniformity_optimum


@dataclass(frozen=True)
class HeldOutMetrics:
    """Alignment and uniformity of the output on held-out images.

    Attributes:
        alignment: ``L_align(alpha)`` of positive pairs, two augmented views of
            each held-out image.
        uniformity: ``L_uniform(t)`` of the held-out images without augmentation.
        uniformity_views: ``L_uniform(t)`` of the views, averaged over the two
            views as the training objective does.
        uniformity_optimum: Population uniformity of the uniform distribution on
            S^(d-1), the lower bound of the population value.
        num_images: Held-out images measured.
        alpha: Exponent of the alignment.
        t: Scale of the uniformity.
        seed: Seed of the views.
    """

    alignment: float
    uniformity: float
    uniformity_views: float
    uniformity_optimum: float
    num_images: int
    alpha: float
    t: float
    seed: int

    def to_dict(self) -> dict[str, float]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def measure_heldout(
    encoder: nn.Module,
    images: torch.Tensor,
    *,
    augmentation: Callable[..., torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
    alpha: float = 2.0,
    t: float = 2.0,
    seed: int = 0,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> HeldOutMetrics:
    """Measure alignment and uniformity of an encoder's output on held-out images.

    Runs in eval mode (see :func:`~alignsphere.evaluation.features.eval_mode`), so
    the values depend only on the weights, the images and ``seed``.

    Args:
        encoder: The encoder.
        images: ``(N, C, H, W)`` uint8 held-out images, N >= 2.
        augmentation: The training augmentation, which makes the positive pairs.
        transform: Deterministic evaluation transform for the un-augmented images.
        alpha: Exponent of the alignment. Defaults to 2, the paper's value.
        t: Scale of the uniformity. Defaults to 2, the paper's value.
        seed: Seed of the views.
        batch_size: Images per forward pass.
        device: Device to run on; defaults to the encoder's.

    Returns:
        A :class:`HeldOutMetrics`.
    """
    if images.shape[0] < 2:
        raise ValueError(
            f"held-out metrics need at least 2 images, got {images.shape[0]}"
        )
    view1, view2 = encode_views(
        encoder, images, augmentation, seed=seed, batch_size=batch_size, device=device
    )
    clean = extract_features(
        encoder, images, transform=transform, batch_size=batch_size, device=device
    )
    # Normalise again in float32 on the CPU: the output of a bf16 or fp16 run
    # can miss unit length by more than the metrics' tolerance.
    return HeldOutMetrics(
        alignment=alignment(view1, view2, alpha, normalize=True),
        uniformity=uniformity(clean, t, normalize=True),
        uniformity_views=(
            uniformity(view1, t, normalize=True) + uniformity(view2, t, normalize=True)
        )
        / 2,
        uniformity_optimum=uniformity_optimum(clean.shape[1], t),
        num_images=int(images.shape[0]),
        alpha=float(alpha),
        t=float(t),
        seed=int(seed),
    )
