"""Encoder weights from MoCo, DDP and DataParallel checkpoints.

Checkpoints name the same weight in several ways:

- ``module.`` in front of every key: saved from a ``DistributedDataParallel``
  or ``DataParallel`` wrapper (``_orig_mod.`` likewise for ``torch.compile``);
- ``encoder_q.``: the query encoder of a MoCo model, next to ``encoder_k.``
  and the ``queue`` (the reference MoCo checkpoints store
  ``module.encoder_q.conv1.weight`` and so on under ``state_dict``);
- ``moco.encoder_q.``: the query encoder in a Lightning checkpoint of
  ``alignsphere train`` with ``method: moco``; ``encoder.`` with the default
  method;
- torchvision's ResNet names (``conv1``, ``bn1``, ``layer1`` .. ``layer4``,
  ``fc``) for alignsphere's ``ResNetEncoder`` names (``stages.stem.0``,
  ``stages.stem.1``, ``stages.layer1`` .., ``head``).

:func:`load_backbone_weights` maps the keys, loads every backbone weight and
raises :class:`BackboneKeyError` when a backbone weight is missing or none
matches, so a checkpoint of another architecture never yields a randomly
initialised network that looks trained. Files load with
``torch.load(weights_only=True)``. This module imports torch alone.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "BackboneKeyError",
    "LoadReport",
    "load_backbone_weights",
    "map_checkpoint_keys",
    "read_state_dict",
    "strip_prefixes",
]

#: Prefixes that wrappers put in front of every key, removed wherever they occur
#: at the start (repeatedly, so ``module.module.`` goes too).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

#: Prefixes of the query encoder inside a larger model, tried in this order.
QUERY_ENCODER_PREFIXES = ("moco.encoder_q.", "encoder_q.", "encoder.")

#: torchvision ResNet names and alignsphere's ``ResNetEncoder`` names.
TORCHVISION_RESNET_NAMES = (
    ("conv1.", "stages.stem.0."),
    ("bn1.", "stages.stem.1."),
    ("layer1.", "stages.layer1."),
    ("layer2.", "stages.layer2."),
    ("layer3.", "stages.layer3."),
    ("layer4.", "stages.layer4."),
    ("fc.", "head."),
)

#: Keys of the target encoder under these prefixes are its projection head; the
#: rest is the backbone.
HEAD_PREFIXES = ("head.",)


class BackboneKeyError(ValueError):
    """A checkpoint does not supply the encoder's backbone weights."""


@dataclass
class LoadReport:
    """Outcome of :func:`load_backbone_weights`.

    Attributes:
        loaded: Encoder keys set from the checkpoint.
        missing_head: Head keys the checkpoint did not supply; they keep their
            initial values.
        unused: Checkpoint keys (after mapping) that the encoder does not have.
    """

    loaded: list[str] = field(default_factory=list)
    missing_head: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def strip_prefixes(
    state_dict: Mapping[str, Any], prefixes: Sequence[str]
) -> dict[str, Any]:
    """Return the entries whose key starts with one of ``prefixes``, prefix removed.

    Each key is matched against the prefixes in order and the first match is
    removed; keys that match none are dropped.
    """
    result: dict[str, Any] = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                result[key[len(prefix) :]] = value
                break
    return result


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def _rename(state_dict: Mapping[str, Any], names: Sequence[tuple[str, str]]):
    renamed = {}
    for key, value in state_dict.items():
        for old, new in names:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


def map_checkpoint_keys(
    state_dict: Mapping[str, Any], target_keys: Sequence[str] | None = None
) -> dict[str, Any]:
    """Map a checkpoint's keys to those of a bare encoder.

    Wrapper prefixes (``module.``, ``_orig_mod.``) are removed. If any key then
    starts with a query-encoder prefix (``moco.encoder_q.``, ``encoder_q.``,
    ``encoder.``, first match wins), only the keys under that prefix are kept,
    without it, which drops the key encoder and the queue. Given
    ``target_keys``, torchvision ResNet names are renamed to
    :class:`~alignsphere.models.ResNetEncoder` names when that matches more
    target keys.

    Args:
        state_dict: Keys and tensors from a checkpoint.
        target_keys: Keys of the encoder to load into, if known.

    Returns:
        A new dict with the mapped keys.
    """
    unwrapped = {_strip_wrappers(key): value for key, value in state_dict.items()}
    for prefix in QUERY_ENCODER_PREFIXES:
        if any(key.startswith(prefix) for key in unwrapped):
            unwrapped = strip_prefixes(unwrapped, (prefix,))
            break
    if target_keys is None:
        return unwrapped
    targets = set(target_keys)
    renamed = _rename(unwrapped, TORCHVISION_RESNET_NAMES)
    if len(targets & renamed.keys()) > len(targets & unwrapped.keys()):
        return renamed
    return unwrapped


def read_state_dict(
    source: str | os.PathLike[str] | Mapping[str, Any],
) -> dict[str, Any]:
    """Return the tensors of a checkpoint file or of a loaded checkpoint dict.

    A dict with a ``state_dict`` entry (Lightning, the reference MoCo scripts,
    ``encoder.pt``) or a ``model`` entry yields that entry; any other dict is
    taken as the state dict itself. Files load with ``weights_only=True``, so
    a file that names any other global than PyTorch's allow-list is rejected
    before it can run code.

    Raises:
        FileNotFoundError: If the file does not exist.
        BackboneKeyError: If the file cannot be read or contains no dict.
    """
    if isinstance(source, Mapping):
        content: Any = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error) else ""
            raise BackboneKeyError(
                f"checkpoint {path} cannot be loaded with weights_only=True: "
                f"{first_line}. Nothing was loaded"
            ) from None
        except zipfile.BadZipFile as error:
            raise BackboneKeyError(f"checkpoint {path} is corrupt: {error}") from None
    if not isinstance(content, Mapping):
        raise BackboneKeyError(
            f"checkpoint contains a {type(content).__name__}, expected a dict of "
            "tensors or a dict with a state_dict entry"
        )
    for entry in ("state_dict", "model"):
        nested = content.get(entry)
        if isinstance(nested, Mapping):
            content = nested
            break
    return {key: value for key, value in content.items() if isinstance(value, Tensor)}


def load_backbone_weights(
    encoder: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict_head: bool = False,
    head_prefixes: Sequence[str] = HEAD_PREFIXES,
) -> LoadReport:
    """Load a checkpoint's encoder weights into ``encoder``, mapping the key names.

    Keys are mapped by :func:`map_checkpoint_keys`. Every backbone key of the
    encoder (every key outside ``head_prefixes``) must be supplied with the
    right shape. The projection head may be missing or of another shape, as
    when a MoCo v2 MLP head meets a linear one. It then keeps its initial
    values and a warning is logged, unless ``strict_head`` makes that an error.
    Linear evaluation reads the backbone features, which this guarantees.

    Args:
        encoder: The encoder to load into, for example
            ``build_encoder("resnet50", head="mlp")``.
        source: A checkpoint file or a loaded dict (see :func:`read_state_dict`).
        strict_head: Raise when the head's weights are missing or do not fit.
        head_prefixes: Key prefixes of the encoder's head.

    Returns:
        A :class:`LoadReport`.

    Raises:
        BackboneKeyError: If no backbone key matches (another architecture, or a
            checkpoint without encoder weights), if some backbone keys are
            missing or have another shape, or, with ``strict_head``, if head keys
            are missing.
    """
    target = encoder.state_dict()
    mapped = map_checkpoint_keys(read_state_dict(source), list(target))
    head = [key for key in target if key.startswith(tuple(head_prefixes))]
    backbone = [key for key in target if key not in head]
    fits = {
        key
        for key, value in mapped.items()
        if key in target and tuple(value.shape) == tuple(target[key].shape)
    }
    matched_backbone = [key for key in backbone if key in fits]
    if backbone and not matched_backbone:
        raise BackboneKeyError(
            "no backbone weight of the checkpoint matches the encoder, so loading "
            f"would leave a random network. Checkpoint keys after mapping: "
            f"{_preview(mapped)}; encoder keys: {_preview(backbone)}. Build the "
            "encoder the checkpoint was trained with"
        )
    missing = [key for key in backbone if key not in fits]
    if missing:
        wrong_shape = [key for key in missing if key in mapped]
        detail = f"; of another shape: {_preview(wrong_shape)}" if wrong_shape else ""
        raise BackboneKeyError(
            f"the checkpoint lacks {len(missing)} of {len(backbone)} backbone weights "
            f"of the encoder ({_preview(missing)}{detail}); it is of another "
            "architecture or options (small_images, in_channels)"
        )
    missing_head = [key for key in head if key not in fits]
    if missing_head:
        message = (
            f"the checkpoint does not supply {len(missing_head)} head weights "
            f"({_preview(missing_head)}); they keep their initial values"
        )
        if strict_head:
            raise BackboneKeyError(message)
        logger.warning("%s", message)
    encoder.load_state_dict({key: mapped[key] for key in fits}, strict=False)
    unused = sorted(key for key in mapped if key not in fits)
    return LoadReport(loaded=sorted(fits), missing_head=missing_head, unused=unused)


def _preview(keys: Sequence[str] | Mapping[str, Any], count: int = 4) -> str:
    names = list(keys)
    shown = ", ".join(names[:count])
    if len(names) > count:
        shown += f", ... ({len(names)} in all)"
    return shown or "none"
