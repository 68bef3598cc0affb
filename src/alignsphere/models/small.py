"""Small encoders that train in minutes on a few CPU cores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch.nn as nn
from torch import Tensor

from alignsphere.models.base import (
    Encoder,
    Norm,
    check_norm,
    check_positive,
    projection_head,
)


class SmallConvNet(Encoder):
    """Four 3x3 conv blocks, global average pooling and a projection head.

    Block i is Conv3x3(stride 1, padding 1) - BatchNorm - ReLU, with a 2x2
    max-pool after blocks 1 to 3 (``ceil_mode=True``, so a 1-pixel map stays 1
    pixel and any input size works). With the default widths (32, 64, 128, 256),
    a 32x32 input gives 16, 8 and 4 pixel maps, and ``pooled`` is the 256-value
    global average. About 0.4 M parameters, sized for CIFAR-10 on CPU.

    Args:
        out_dim: Output dimension. Defaults to 128.
        in_channels: Input channels. Defaults to 3.
        widths: Output channels of the four blocks.
        norm: ``"batch"`` or ``"none"`` (no BatchNorm, convolutions get biases).
        head: ``"linear"`` or ``"mlp"``; see :func:`projection_head`.
        head_hidden_dim: Hidden width of the MLP head; defaults to the last width.
    """

    def __init__(
        self,
        out_dim: int = 128,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (32, 64, 128, 256),
        norm: Norm = "batch",
        head: Literal["linear", "mlp"] = "linear",
        head_hidden_dim: int | None = None,
    ) -> None:
        check_norm(norm)
        widths = tuple(widths)
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 entries, got {widths}")
        for width in widths:
            check_positive("widths entry", width)
        super().__init__(
            in_channels=in_channels,
            out_dim=out_dim,
            feature_layer="pooled",
            feature_dim=widths[-1],
        )
        self.norm = norm

        use_bn = norm == "batch"
        stages: dict[str, nn.Module] = {}
        previous = in_channels
        for index, width in enumerate(widths, start=1):
            layers: list[nn.Module] = [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=not use_bn)
            ]
            if use_bn:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            if index < len(widths):
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages[f"block{index}"] = nn.Sequential(*layers)
            previous = width
        stages["pooled"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

        self.stages = nn.ModuleDict(stages)
        self.head = projection_head(widths[-1], out_dim, head, head_hidden_dim, norm)


class MLPEncoder(Encoder):
    """Fully connected encoder for small flattened images such as 8x8 digits.

    Hidden layer i is Linear - BatchNorm1d - ReLU (Linear - ReLU with
    ``norm="none"``), and the head is one Linear layer to ``out_dim``. Inputs of
    shape (N, C, H, W) with C * H * W = ``input_dim``, or already flat (N,
    input_dim), are accepted.

    Args:
        input_dim: Number of input values per example. Defaults to 64 (1 x 8 x 8).
        out_dim: Output dimension. Defaults to 128.
        hidden_dims: Widths of the hidden layers, at least one.
        norm: ``"batch"`` or ``"none"``.
        in_channels: Channels of image inputs, checked against the input shape.

    Example:
        >>> import torch
        >>> encoder = MLPEncoder().eval()
        >>> encoder(torch.rand(5, 1, 8, 8)).shape
        torch.Size([5, 128])
    """

    def __init__(
        self,
        input_dim: int = 64,
        out_dim: int = 128,
        *,
        hidden_dims: Sequence[int] = (256, 256),
        norm: Norm = "batch",
        in_channels: int = 1,
    ) -> None:
        check_norm(norm)
        check_positive("input_dim", input_dim)
        hidden_dims = tuple(hidden_dims)
        if not hidden_dims:
            raise ValueError("hidden_dims must have at least one entry")
        for width in hidden_dims:
            check_positive("hidden_dims entry", width)
        super().__init__(
            in_channels=in_channels,
            out_dim=out_dim,
            feature_layer=f"hidden{len(hidden_dims)}",
            feature_dim=hidden_dims[-1],
        )
        self.input_dim = input_dim
        self.norm = norm

        use_bn = norm == "batch"
        stages: dict[str, nn.Module] = {"flatten": nn.Flatten()}
        previous = input_dim
        for index, width in enumerate(hidden_dims, start=1):
            layers: list[nn.Module] = [nn.Linear(previous, width, bias=not use_bn)]
            if use_bn:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            stages[f"hidden{index}"] = nn.Sequential(*layers)
            previous = width

        self.stages = nn.ModuleDict(stages)
        self.head = nn.Linear(previous, out_dim)

    def check_input(self, x: Tensor) -> None:
        if x.ndim == 2:
            size = x.shape[1]
        elif x.ndim == 4 and x.shape[1] == self.in_channels:
            size = math.prod(x.shape[1:])
        else:
            size = None
        if size != self.input_dim:
            raise ValueError(
                f"MLPEncoder expects input of shape (N, {self.input_dim}) or "
                f"(N, {self.in_channels}, H, W) with {self.in_channels} x H x W = "
                f"{self.input_dim}, got {tuple(x.shape)}"
            )
