"""Image encoders whose output is L2-normalised onto the unit hypersphere."""

from alignsphere.models.alexnet import AlexNetEncoder
from alignsphere.models.base import Encoder, Norm, projection_head
from alignsphere.models.registry import (
    ENCODERS,
    build_encoder,
    encoder_parameters,
    list_encoders,
    register_encoder,
)
from alignsphere.models.resnet import ResNetEncoder
from alignsphere.models.small import MLPEncoder, SmallConvNet

__all__ = [
    "ENCODERS",
    "AlexNetEncoder",
    "Encoder",
    "MLPEncoder",
    "Norm",
    "ResNetEncoder",
    "SmallConvNet",
    "build_encoder",
    "encoder_parameters",
    "list_encoders",
    "projection_head",
    "register_encoder",
]
