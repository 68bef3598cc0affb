"""Base class of encoders whose output lies on the unit hypersphere."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: Normalisation layers of an encoder: batch norm, or none at all (for example
#: for a distributed test whose result must not depend on the batch split).
Norm = Literal["batch", "none"]
_NORMS = ("batch", "none")


def check_norm(norm: str) -> None:
    """Raise ValueError unless ``norm`` is ``"batch"`` or ``"none"``."""
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")


def check_positive(name: str, value: int) -> None:
    """Raise ValueError unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Encoder(nn.Module):
    """An image encoder whose ``forward`` returns L2-normalised features.

    Subclasses fill ``stages``, an ordered :class:`torch.nn.ModuleDict` applied in
    sequence, and ``head``, applied to the output of the last stage. The output
    is ``head(x) / ||head(x)||_2`` along dimension 1, so every row lies on the
    unit sphere S^(out_dim - 1). A row whose head output is exactly zero stays
    zero instead of becoming NaN, because ``torch.nn.functional.normalize``
    divides by max(norm, 1e-12).

    Attributes:
        in_channels: Channels of the input images.
        out_dim: Dimension d of the output features.
        feature_layer: Name of the stage returned by :meth:`features`, the
            backbone output before the head.
        feature_dim: Size of that stage's output for the default input size.
        stages: Named stages, in order.
        head: Projection from the last stage to ``out_dim``.
    """

    stages: nn.ModuleDict
    head: nn.Module

    def __init__(
        self, *, in_channels: int, out_dim: int, feature_layer: str, feature_dim: int
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("out_dim", out_dim)
        self.in_channels = in_channels
        self.out_dim = out_dim
        self.feature_layer = feature_layer
        self.feature_dim = feature_dim

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names accepted by :meth:`forward_features`, in forward order."""
        return (*self.stages.keys(), "output")

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError if ``x`` is not a batch this encoder accepts."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input of shape "
                f"(N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def forward_features(self, x: Tensor, layer: str = "output") -> Tensor:
        """Run the encoder up to ``layer`` and return that layer's output.

        Args:
            x: Input batch.
            layer: A name from :attr:`layer_names`. ``"output"`` returns the
                L2-normalised features of shape (N, out_dim).

        Returns:
            The layer's activations (after its normalisation and ReLU, where it has
            them).

        Raises:
            ValueError: On an unknown layer name or an input of the wrong shape.
        """
        if layer != "output" and layer not in self.stages:
            raise ValueError(
                f"Unknown layer {layer!r} for {type(self).__name__}; valid layers: "
                f"{', '.join(self.layer_names)}"
            )
        self.check_input(x)
        for name, stage in self.stages.items():
            x = stage(x)
            if name == layer:
                return x
        return F.normalize(self.head(x), dim=1)

    def features(self, x: Tensor) -> Tensor:
        """Return the backbone features before the head, of shape (N, feature_dim)."""
        return self.forward_features(x, self.feature_layer)

    def forward(self, x: Tensor) -> Tensor:
        """Encode a batch to unit vectors of shape (N, out_dim)."""
        return self.forward_features(x, "output")


def projection_head(
    in_dim: int,
    out_dim: int,
    kind: Literal["linear", "mlp"] = "linear",
    hidden_dim: int | None = None,
    norm: Norm = "batch",
) -> nn.Module:
    """Build the projection head from backbone features to the output dimension.

    Args:
        in_dim: Feature dimension.
        out_dim: Output dimension.
        kind: ``"linear"`` for one Linear layer, ``"mlp"`` for
            Linear-BatchNorm-ReLU-Linear (the BatchNorm is dropped when ``norm``
            is ``"none"``).
        hidden_dim: Hidden width of the MLP head; defaults to ``in_dim``.
        norm: ``"batch"`` or ``"none"``.

    Raises:
        ValueError: On an unknown ``kind`` or ``norm``.
    """
    check_norm(norm)
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind != "mlp":
        raise ValueError(f"head must be 'linear' or 'mlp', got {kind!r}")
    hidden = hidden_dim or in_dim
    check_positive("head_hidden_dim", hidden)
    use_bn = norm == "batch"
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not use_bn)]
    if use_bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    return nn.Sequential(*layers)
