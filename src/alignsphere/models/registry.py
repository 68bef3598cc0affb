"""Build encoders by name, for configs and the command line."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from alignsphere.models.alexnet import AlexNetEncoder
from alignsphere.models.base import Encoder
from alignsphere.models.resnet import ResNetEncoder
from alignsphere.models.small import MLPEncoder, SmallConvNet

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "alexnet": AlexNetEncoder,
    "resnet18": functools.partial(ResNetEncoder, 18),
    "resnet50": functools.partial(ResNetEncoder, 50),
    "small_convnet": SmallConvNet,
    "mlp": MLPEncoder,
}


def list_encoders() -> list[str]:
    """Return the registered encoder names in sorted order."""
    return sorted(ENCODERS)


def encoder_parameters(name: str) -> list[str]:
    """Return the keyword arguments that :func:`build_encoder` accepts for ``name``."""
    builder = _lookup(name)
    signature = inspect.signature(builder)
    return [
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]


def _lookup(name: str) -> Callable[..., Encoder]:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown encoder {name!r}; valid encoders: {', '.join(list_encoders())}"
        ) from None


def build_encoder(name: str, **kwargs) -> Encoder:
    """Build an encoder by registry name.

    Names: ``alexnet`` (:class:`AlexNetEncoder`, 64 px), ``resnet18`` and
    ``resnet50`` (:class:`ResNetEncoder`), ``small_convnet``
    (:class:`SmallConvNet`, 32 px on CPU) and ``mlp`` (:class:`MLPEncoder`, 8x8
    digits). Every encoder takes ``out_dim`` (default 128) and ``in_channels``.

    Args:
        name: Registry name.
        **kwargs: Keyword arguments of the encoder class.

    Returns:
        A freshly initialised encoder.

    Raises:
        ValueError: On an unknown name or keyword argument; the message lists the
            valid ones.

    Example:
        >>> build_encoder("small_convnet", out_dim=64, norm="none").out_dim
        64
    """
    builder = _lookup(name)
    valid = encoder_parameters(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"Invalid arguments {unknown} for encoder {name!r}; valid arguments: "
            f"{', '.join(valid)}"
        )
    return builder(**kwargs)


def register_encoder(
    name: str, builder: Callable[..., Encoder], *, overwrite: bool = False
) -> None:
    """Add an encoder constructor to the registry under ``name``.

    Raises:
        ValueError: If the name is taken and ``overwrite`` is False.
    """
    if name in ENCODERS and not overwrite:
        raise ValueError(
            f"Encoder {name!r} already exists; pass overwrite=True to replace it"
        )
    ENCODERS[name] = builder
