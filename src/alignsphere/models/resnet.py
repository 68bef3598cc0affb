"""torchvision ResNets as hypersphere encoders, with an optional small-image stem."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn

from alignsphere.models.base import Encoder, check_positive, projection_head

_FEATURE_DIMS = {18: 512, 34: 512, 50: 2048, 101: 2048, 152: 2048}


class ResNetEncoder(Encoder):
    """torchvision ResNet backbone, projection head and L2 normalisation.

    The backbone is ``torchvision.models.resnet{depth}(weights=None)``: random
    initialisation, nothing is downloaded. Its ``fc`` layer is replaced by the
    projection head.

    Stages: ``stem`` (conv1, bn1, relu, maxpool), ``layer1`` to ``layer4``, and
    ``pooled`` (global average pool, flattened: 512 values for ResNet-18/34,
    2,048 for ResNet-50/101/152).

    Args:
        depth: 18, 34, 50, 101 or 152.
        out_dim: Output dimension. Defaults to 128.
        in_channels: Input channels. Defaults to 3.
        small_images: Replace the 7x7 stride-2 stem convolution with a 3x3
            stride-1 one and drop the max-pool, the usual change for 32 px images
            (CIFAR): a 32x32 input then reaches layer4 as 4x4 instead of 1x1.
        head: ``"linear"`` (one Linear layer) or ``"mlp"``
            (Linear-BatchNorm-ReLU-Linear).
        head_hidden_dim: Hidden width of the MLP head; defaults to the feature
            dimension.

    Example:
        >>> import torch
        >>> encoder = ResNetEncoder(18, small_images=True).eval()
        >>> encoder(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """

    def __init__(
        self,
        depth: int = 18,
        out_dim: int = 128,
        in_channels: int = 3,
        *,
        small_images: bool = False,
        head: Literal["linear", "mlp"] = "linear",
        head_hidden_dim: int | None = None,
    ) -> None:
        from torchvision import models

        if depth not in _FEATURE_DIMS:
            raise ValueError(
                f"depth must be one of {sorted(_FEATURE_DIMS)}, got {depth!r}"
            )
        check_positive("out_dim", out_dim)
        check_positive("in_channels", in_channels)
        feature_dim = _FEATURE_DIMS[depth]
        super().__init__(
            in_channels=in_channels,
            out_dim=out_dim,
            feature_layer="pooled",
            feature_dim=feature_dim,
        )
        self.depth = depth
        self.small_images = small_images
        backbone = getattr(models, f"resnet{depth}")(weights=None)
        if small_images:
            backbone.conv1 = nn.Conv2d(
                in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False
            )
            backbone.maxpool = nn.Identity()
        elif in_channels != 3:
            backbone.conv1 = nn.Conv2d(
                in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
            )
        if small_images or in_channels != 3:
            # The same initialisation torchvision gives its convolutions.
            nn.init.kaiming_normal_(
                backbone.conv1.weight, mode="fan_out", nonlinearity="relu"
            )
        self.stages = nn.ModuleDict(
            {
                "stem": nn.Sequential(
                    backbone.conv1, backbone.bn1, backbone.relu, backbone.maxpool
                ),
                "layer1": backbone.layer1,
                "layer2": backbone.layer2,
                "layer3": backbone.layer3,
                "layer4": backbone.layer4,
                "pooled": nn.Sequential(backbone.avgpool, nn.Flatten()),
            }
        )
        self.head = projection_head(feature_dim, out_dim, head, head_hidden_dim)
