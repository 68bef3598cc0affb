"""STS Benchmark: Spearman correlation of cosine similarity with the gold scores.

An STS-B file (``sts-train.csv``, ``sts-dev.csv``, ``sts-test.csv``) has one
pair per line, tab-separated: genre, file, year, id, score, sentence 1,
sentence 2, and on some lines further source columns. Only columns 5-7
(1-based) are read. Lines are split on tabs, not with a CSV reader, because
the sentences contain unbalanced quote characters.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignsphere.text.corpus import decode_text, split_lines
from alignsphere.text.errors import TextDataError, TextDataNotFoundError

logger = logging.getLogger(__name__)

STS_SPLITS = ("train", "dev", "test")


@dataclass
class STSPairs:
    """Sentence pairs with gold similarity scores (0-5)."""

    first: list[str]
    second: list[str]
    scores: np.ndarray


@dataclass
class STSResult:
    """Correlations of cosine similarity with the gold scores.

    Attributes:
        split: ``train``, ``dev``, ``test`` or the file name.
        spearman: Spearman rank correlation, times 100 (the usual report).
        pearson: Pearson correlation, times 100.
        num_pairs: Pairs scored.
    """

    split: str
    spearman: float
    pearson: float
    num_pairs: int

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable dict."""
        return asdict(self)


def resolve_sts_file(path: str | os.PathLike[str], split: str = "test") -> Path:
    """Return the STS-B file of ``split`` in a folder, or ``path`` if it is a file.

    Raises:
        TextDataNotFoundError: If the folder or file does not exist.
    """
    path = Path(path)
    if path.is_dir():
        if split not in STS_SPLITS:
            raise ValueError(
                f"invalid STS-B split {split!r}; valid: {', '.join(STS_SPLITS)}"
            )
        path = path / f"sts-{split}.csv"
    if not path.is_file():
        raise TextDataNotFoundError(
            f"STS-B file {path} not found; give the folder with sts-train.csv, "
            "sts-dev.csv and sts-test.csv, or one of those files",
            [path],
        )
    return path


def read_sts(path: str | os.PathLike[str]) -> STSPairs:
    """Read an STS-B file: columns 5-7 of each tab-separated line.

    Raises:
        TextDataNotFoundError: If the file is missing.
        TextDataError: On a line with fewer than 7 columns or a score that is
            not a number in [0, 5]; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise TextDataNotFoundError(f"STS-B file {path} not found", [path])
    text, _ = decode_text(path.read_bytes(), path)
    first, second, scores = [], [], []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            raise TextDataError(
                f"{path} line {number} has {len(fields)} tab-separated columns, "
                "expected at least 7 (genre, file, year, id, score, sentence 1, "
                "sentence 2)"
            )
        try:
            score = float(fields[4])
        except ValueError:
            score = float("nan")
        if not 0 <= score <= 5:
            raise TextDataError(
                f"{path} line {number}: invalid score {fields[4]!r}; expected a number "
                "in [0, 5] in column 5"
            )
        first.append(fields[5].strip())
        second.append(fields[6].strip())
        scores.append(score)
    if not scores:
        raise TextDataError(f"STS-B file {path} contains no pair")
    return STSPairs(first, second, np.asarray(scores, dtype=np.float64))


def evaluate_sts(
    encode: Callable[[list[str]], np.ndarray],
    path: str | os.PathLike[str],
    split: str = "test",
) -> STSResult:
    """Correlate the cosine similarity of each pair's vectors with its gold score.

    Args:
        encode: Maps a list of sentences to an ``(N, d)`` array.
        path: STS-B folder or file.
        split: Split to read from a folder.

    Returns:
        The :class:`STSResult` (correlations times 100).
    """
    from scipy.stats import pearsonr, spearmanr

    file = resolve_sts_file(path, split)
    pairs = read_sts(file)
    unique = sorted(set(pairs.first) | set(pairs.second))
    row = {sentence: i for i, sentence in enumerate(unique)}
    vectors = np.asarray(encode(unique), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    a = vectors[[row[s] for s in pairs.first]]
    b = vectors[[row[s] for s in pairs.second]]
    cosine = (a * b).sum(axis=1)
    result = STSResult(
        split=split if Path(path).is_dir() else file.name,
        spearman=100.0 * float(spearmanr(cosine, pairs.scores).statistic),
        pearson=100.0 * float(pearsonr(cosine, pairs.scores).statistic),
        num_pairs=len(pairs.scores),
    )
    logger.info(
        "STS-B %s: Spearman %.2f, Pearson %.2f on %d pairs",
        result.split,
        result.spearman,
        result.pearson,
        result.num_pairs,
    )
    return result
