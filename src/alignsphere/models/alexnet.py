"""The AlexNet variant of Wang & Isola's STL-10 experiments (64 px inputs).

Wang & Isola, "Understanding Contrastive Representation Learning through Alignment
and Uniformity on the Hypersphere", ICML 2020 (arXiv:2005.10242); reference code
at github.com/ssnl/align_uniform, examples/stl10/encoder.py.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from alignsphere.models.base import Encoder, Norm, check_norm, check_positive

#: Output channels of the five conv blocks.
ALEXNET_CHANNELS = (96, 192, 384, 384, 192)
#: Spatial size of conv5 after its max-pool for a 64x64 input, kept for any input
#: size by adaptive average pooling.
ALEXNET_POOLED_SIZE = 7
#: Smallest input side that survives the three 3x3 stride-2 max-pools.
ALEXNET_MIN_INPUT_SIZE = 15


def _conv_block(in_channels: int, out_channels: int, pool: bool, norm: Norm):
    use_bn = norm == "batch"
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=not use_bn)
    ]
    if use_bn:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    return nn.Sequential(*layers)


def _fc_block(in_features: int, out_features: int, norm: Norm, flatten: bool = False):
    use_bn = norm == "batch"
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    layers.append(nn.Linear(in_features, out_features, bias=not use_bn))
    if use_bn:
        layers.append(nn.BatchNorm1d(out_features))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class AlexNetEncoder(Encoder):
    """Small AlexNet for 64 px images with an L2-normalised output.

    Architecture (the network of Wang & Isola's STL-10 experiments):

    - conv1..conv5: 3x3 convolutions, stride 1, padding 1, with 96, 192, 384,
      384 and 192 channels, each followed by BatchNorm and ReLU; a 3x3 max-pool
      with stride 2 follows conv1, conv2 and conv5. Small kernels and stride 1
      (instead of ImageNet AlexNet's 11x11 stride 4) suit 64 px inputs: a 64x64
      image gives 31, 15 and finally 7x7 maps.
    - pooled: adaptive average pooling to 7x7 and flattening (9,408 values).
      At 64 px the conv5 map is already 7x7, so this is the identity and the
      network equals the reference one. Other input sizes (at least 15 px) are
      pooled or stretched to 7x7.
    - fc6 and fc7: Linear to 4,096 with BatchNorm1d and ReLU.
    - head (fc8): Linear to ``out_dim``, then L2 normalisation.

    Convolutions and fc6/fc7 have no bias when BatchNorm follows them. Weights
    are initialised as in the reference code: conv and linear weights from
    N(0, 0.02^2), biases 0, BatchNorm scale 1 and shift 0.

    Args:
        out_dim: Output dimension d. Defaults to 128, as in Wang & Isola.
        in_channels: Input channels. Defaults to 3.
        norm: ``"batch"`` or ``"none"`` (no BatchNorm anywhere, layers get biases).

    Example:
        >>> import torch
        >>> encoder = AlexNetEncoder().eval()
        >>> encoder(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 128])
        >>> encoder.forward_features(torch.randn(2, 3, 64, 64), "fc7").shape
        torch.Size([2, 4096])
    """

    def __init__(self, out_dim: int = 128, in_channels: int = 3, norm: Norm = "batch"):
        check_norm(norm)
        check_positive("out_dim", out_dim)
        pooled_dim = ALEXNET_CHANNELS[-1] * ALEXNET_POOLED_SIZE**2
        super().__init__(
            in_channels=in_channels,
            out_dim=out_dim,
            feature_layer="pooled",
            feature_dim=pooled_dim,
        )
        self.norm = norm
        widths = (in_channels, *ALEXNET_CHANNELS)
        pooled_after = {1, 2, 5}
        stages: dict[str, nn.Module] = {}
        for index in range(1, 6):
            stages[f"conv{index}"] = _conv_block(
                widths[index - 1], widths[index], index in pooled_after, norm
            )
        stages["pooled"] = nn.Sequential(
            nn.AdaptiveAvgPool2d(ALEXNET_POOLED_SIZE), nn.Flatten()
        )
        stages["fc6"] = _fc_block(pooled_dim, 4096, norm)
        stages["fc7"] = _fc_block(4096, 4096, norm)
        self.stages = nn.ModuleDict(stages)
        self.head = nn.Linear(4096, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise weights from N(0, 0.02^2) and biases to 0, as the reference."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        if min(x.shape[-2:]) < ALEXNET_MIN_INPUT_SIZE:
            raise ValueError(
                f"AlexNetEncoder needs inputs of at least {ALEXNET_MIN_INPUT_SIZE}x"
                f"{ALEXNET_MIN_INPUT_SIZE} pixels, got {tuple(x.shape[-2:])}; resize "
                "the images or use the small_convnet or mlp encoder"
            )
