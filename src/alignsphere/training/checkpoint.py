"""Checkpoint files that load without running code from the file.

Every load in alignsphere, the resume of a training run included, goes through
``torch.load(weights_only=True)``. PyTorch's restricted unpickler rebuilds
tensors, primitive types and a short list of containers, and it rejects any
other global the file names. So a crafted file cannot call ``os.system`` or
import a module. alignsphere stores hyperparameters as plain dicts, lists and scalars, so
its Lightning checkpoints need no global beyond PyTorch's own allow-list
(``collections.OrderedDict`` for state dicts and ``collections.Counter`` for the
milestones of ``MultiStepLR`` are on it as of torch 2.6).
:data:`CHECKPOINT_SAFE_GLOBALS` is where a type would be added if a checkpoint
ever needed one.

Before loading, :func:`check_checkpoint` lists the globals that a file names
without unpickling it (``torch.serialization.get_unsafe_globals_in_checkpoint``),
so the error names what was found.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

logger = logging.getLogger(__name__)

#: Globals allowed in checkpoints on top of PyTorch's weights-only defaults.
#: Empty, because hyperparameters are stored as plain types; see the module
#: docstring.
CHECKPOINT_SAFE_GLOBALS: tuple[Any, ...] = ()

#: Value of ``format`` in an exported encoder file.
ENCODER_FORMAT = "alignsphere.encoder"
ENCODER_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe, or of another model."""


class IncompleteCheckpointError(CheckpointError):
    """A checkpoint file is not a whole ``torch.save`` archive, such as a truncated one.

    A resume may fall back to an older checkpoint on this error, but never on a
    checkpoint rejected as unsafe.
    """


def save_atomically(content: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``torch.save(content)`` to ``path`` so that no reader sees part of a file.

    The bytes go to a hidden temporary file in the same folder, are flushed to
    disk with ``fsync``, and replace ``path`` with ``os.replace``, which is
    atomic on one POSIX file system. A process killed at any point leaves the
    previous ``path`` whole, plus at most a stale ``.NAME.tmp`` file that the
    next save overwrites. A failed write (a full disk, for example) removes the
    temporary file and raises the ``OSError``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(content, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        # torch.save reports a failed write, such as a full disk, as a
        # RuntimeError of its zip writer, with the OSError as its context.
        if isinstance(error, RuntimeError) and isinstance(error.__context__, OSError):
            raise error.__context__ from None
        raise
    # Persist the rename itself, so a power loss cannot bring the old file back.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes each file with :func:`save_atomically`.

    Lightning 2.6's ``TorchCheckpointIO`` writes through an fsspec transaction
    whose temporary file lives in the system temp folder. When that folder is on
    another file system than the run, the final move is a copy into the target
    path, and a kill during the copy leaves a truncated ``last.ckpt``.
    """

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike[str],
        storage_options: Any | None = None,
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        save_atomically(checkpoint, path)


@contextlib.contextmanager
def checkpoint_safe_globals() -> Iterator[None]:
    """Allow :data:`CHECKPOINT_SAFE_GLOBALS` in weights-only loads inside the block."""
    with torch.serialization.safe_globals(list(CHECKPOINT_SAFE_GLOBALS)):
        yield


def check_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Check that a file exists and is a checkpoint that a weights-only load accepts.

    The file is not unpickled: its pickle is scanned for the globals it names.

    Args:
        path: A checkpoint written by ``torch.save`` (Lightning ``.ckpt`` files
            included).

    Returns:
        The path as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: If the file does not exist, is not a PyTorch zip
            checkpoint, or names a global outside the allow-list (the message
            lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found; give the path of a .ckpt or encoder.pt "
            "file written by alignsphere train"
        )
    if not zipfile.is_zipfile(path):
        raise IncompleteCheckpointError(
            f"checkpoint {path} is not a PyTorch checkpoint (not a zip archive "
            "written by torch.save); it may be truncated or of another format"
        )
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, ValueError, pickle.UnpicklingError) as error:
        raise IncompleteCheckpointError(
            f"checkpoint {path} cannot be read: {error}"
        ) from None
    allowed = {_global_name(item) for item in CHECKPOINT_SAFE_GLOBALS}
    unsafe = [name for name in found if name not in allowed]
    if unsafe:
        raise CheckpointError(
            f"checkpoint {path} was rejected: its pickle names globals outside the "
            f"weights-only allow-list ({', '.join(unsafe)}), which could run code "
            "when loaded. Nothing was loaded; use a checkpoint written by "
            "alignsphere train from a trusted source"
        )
    return path


def _global_name(item: Any) -> str:
    if isinstance(item, tuple):
        return str(item[1])
    return f"{item.__module__}.{item.__qualname__}"


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` after :func:`check_checkpoint`.

    Args:
        path: Checkpoint file.
        map_location: Device for the tensors. Defaults to CPU.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: If the file is missing, unreadable, unsafe, or not a dict.
    """
    path = check_checkpoint(path)
    try:
        with checkpoint_safe_globals():
            content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"checkpoint {path} was rejected by the weights-only loader: "
            f"{first_line}. Nothing was loaded"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise IncompleteCheckpointError(
            f"checkpoint {path} cannot be read: {error}"
        ) from None
    if not isinstance(content, dict):
        raise CheckpointError(
            f"checkpoint {path} contains a {type(content).__name__}, expected a dict"
        )
    return content


def save_encoder_file(
    path: str | os.PathLike[str],
    encoder: torch.nn.Module,
    config: Mapping[str, Any],
) -> Path:
    """Write an encoder's weights and the config that rebuilds it.

    The file is a dict of plain types and tensors: ``format``, ``version``,
    ``config`` (the training config as nested dicts) and ``state_dict``. It is
    written to a temporary file and renamed, so a reader never sees half a file.

    Args:
        path: Output file, conventionally ``encoder.pt``.
        encoder: The trained encoder.
        config: The training config as plain nested dicts.

    Returns:
        The written path.
    """
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    content = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_FORMAT_VERSION,
        "config": dict(config),
        "state_dict": state,
    }
    return save_atomically(content, path)


def read_encoder_checkpoint(path: str | os.PathLike[str]) -> tuple[dict, dict]:
    """Read the training config and the encoder weights from either file kind.

    Accepts an ``encoder.pt`` from :func:`save_encoder_file`, a Lightning
    ``.ckpt`` written by ``alignsphere train``, or a run folder (its
    ``encoder.pt``, else ``checkpoints/last.ckpt``).

    Returns:
        ``(config, state_dict)``: the config as nested dicts and the encoder's
        state dict (keys without the ``encoder.`` prefix of the LightningModule).

    Raises:
        CheckpointError: If the file is missing, unsafe, or not written by
            alignsphere.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "encoder.pt", path / "checkpoints" / "last.ckpt"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(
                f"run folder {path} has neither encoder.pt nor checkpoints/last.ckpt; "
                "give a checkpoint file or the --output folder of alignsphere train"
            )
        path = found
    content = load_checkpoint(path)
    if content.get("format") == ENCODER_FORMAT:
        return dict(content["config"]), dict(content["state_dict"])
    hyperparameters = content.get("hyper_parameters")
    if isinstance(hyperparameters, dict) and "config" in hyperparameters:
        # method: moco keeps the query encoder under moco.encoder_q.
        prefix = "encoder."
        if hyperparameters["config"].get("method") == "moco":
            prefix = "moco.encoder_q."
        state = {
            key[len(prefix) :]: value
            for key, value in content.get("state_dict", {}).items()
            if key.startswith(prefix)
        }
        return dict(hyperparameters["config"]), state
    raise CheckpointError(
        f"checkpoint {path} was not written by alignsphere train (it has neither an "
        "encoder config nor Lightning hyperparameters with a config)"
    )


def load_encoder(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Any]:
    """Rebuild a trained encoder from an ``encoder.pt``, a ``.ckpt`` or a run folder.

    The encoder is built from the stored config and its weights are loaded
    strictly, so a file of another architecture fails here with the mismatched
    keys instead of producing wrong features.

    Args:
        path: See :func:`read_encoder_checkpoint`.
        map_location: Device of the loaded weights.

    Returns:
        ``(encoder, config)``: the encoder in eval mode and the
        :class:`~alignsphere.training.config.TrainConfig` it was trained with.

    Raises:
        CheckpointError: If the file is missing or unsafe, its config is invalid
            or of a text encoder, or its weights do not fit the architecture its
            config describes.
    """
    from alignsphere.training.config import ConfigError, config_from_dict
    from alignsphere.training.data import resolve_preset
    from alignsphere.training.module import build_encoder_from_config

    saved, state = read_encoder_checkpoint(path)
    if isinstance(saved.get("data"), dict) and saved["data"].get("name") == "text":
        raise CheckpointError(
            f"{path} is a text encoder; evaluate it with alignsphere senteval "
            "or alignsphere sts"
        )
    try:
        config = config_from_dict(saved)
        encoder = build_encoder_from_config(config.model, resolve_preset(config.data))
    except (ConfigError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} stores a config that cannot rebuild its encoder: "
            f"{error}"
        ) from None
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as error:
        summary = " ".join(str(error).split()).rstrip(".")
        if len(summary) > 400:
            summary = summary[:400] + " ..."
        raise CheckpointError(
            f"checkpoint {path} does not fit a {config.model.name} encoder "
            f"(out_dim={config.model.out_dim}, options={config.model.options}): "
            f"{summary}. Use a checkpoint written by alignsphere train for this model"
        ) from None
    encoder.to(map_location)
    return encoder.eval(), config
