"""Positive pairs: index files of row pairs, and tab-separated sentence-pair files.

Sentence-pair files are split on the delimiter only, with no CSV quoting,
because sentences contain quote characters that a CSV reader would treat as
field quotes. Columns are counted from 1, as in ``cut -f``. The preset
``stsb`` reads the STS Benchmark release files (``sts-train.csv``,
``sts-dev.csv``, ``sts-test.csv``): score in column 5, sentences in columns 6
and 7, and on some lines two more columns of source notes, which are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignsphere.measure.errors import MeasureInputError

# Pairs with a score strictly above this are positives on STS-B's 0-5 scale,
# as in SimCSE, which takes these pairs as the positives for alignment.
STSB_POSITIVE_THRESHOLD = 4.0


@dataclass(frozen=True)
class PairFileFormat:
    """Column layout of a delimited sentence-pair file.

    Attributes:
        first_column: Column of the first sentence, counted from 1.
        second_column: Column of the second sentence, counted from 1.
        score_column: Column of the similarity score, or None when every pair
            is a positive pair.
        delimiter: Field separator. Defaults to a tab.
        header_lines: Lines to skip at the top of the file. Defaults to 0.
    """

    first_column: int
    second_column: int
    score_column: int | None = None
    delimiter: str = "\t"
    header_lines: int = 0

    def __post_init__(self) -> None:
        columns = [self.first_column, self.second_column]
        if self.score_column is not None:
            columns.append(self.score_column)
        if any(int(column) < 1 for column in columns):
            raise ValueError(f"columns are counted from 1, got {columns}")
        if len(set(columns)) != len(columns):
            raise ValueError(
                f"the sentence and score columns must differ, got {columns}"
            )
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        if self.header_lines < 0:
            raise ValueError(f"header_lines must be >= 0, got {self.header_lines}")


PAIR_FILE_PRESETS: dict[str, PairFileFormat] = {
    # STS Benchmark: genre, file, year, id, score, sentence1, sentence2[, notes x2].
    "stsb": PairFileFormat(first_column=6, second_column=7, score_column=5),
    # Two sentences per line and nothing else: every line is a positive pair.
    "plain": PairFileFormat(first_column=1, second_column=2),
}


@dataclass(frozen=True)
class SentencePairs:
    """Sentence pairs read from one or more files.

    Attributes:
        first: First sentence of each pair, stripped of surrounding whitespace.
        second: Second sentence of each pair.
        scores: float64 score of each pair, or None when the files have no scores.
        files: File of each pair, as an index into ``file_names``.
        lines: Line number (from 1) of each pair in its file.
        file_names: The files, in the order they were read.
    """

    first: list[str]
    second: list[str]
    scores: np.ndarray | None
    files: np.ndarray
    lines: np.ndarray
    file_names: list[str]

    def __len__(self) -> int:
        return len(self.first)

    def location(self, pair: int) -> str:
        """Return ``"FILE line N"`` for pair number ``pair``."""
        return f"{self.file_names[self.files[pair]]} line {self.lines[pair]}"

    def positives(self, threshold: float | None) -> np.ndarray:
        """Return the indices of pairs with score > ``threshold`` (every pair if unscored)."""
        if self.scores is None or threshold is None:
            return np.arange(len(self), dtype=np.int64)
        return np.flatnonzero(self.scores > threshold).astype(np.int64)


def read_sentence_pairs(
    paths: str | Path | list[str | Path],
    layout: PairFileFormat | str = "stsb",
    *,
    encoding: str = "utf-8",
) -> SentencePairs:
    """Read sentence pairs from delimited text files.

    Lines are split on ``\\n`` only (a trailing ``\\r`` is dropped), so a
    character such as U+0085 inside a sentence does not end the line. Blank
    lines are skipped. Sentences are stripped of surrounding whitespace, so
    that a sentence with a trailing space matches the same sentence without.

    Args:
        paths: One file or several; their pairs are concatenated.
        layout: A :class:`PairFileFormat`, or the name of a preset in
            :data:`PAIR_FILE_PRESETS` (``"stsb"`` or ``"plain"``).
        encoding: Text encoding of the files. Defaults to UTF-8.

    Returns:
        The pairs, with their scores and where each came from.

    Raises:
        MeasureInputError: a file is missing or not valid in ``encoding``, a line
            lacks a needed column, a sentence is empty, or a score is not a
            finite number. The message names the file and line.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/pairs.tsv"
        >>> _ = open(path, "w").write('He said "hi".\\tHe greeted us.\\n')
        >>> read_sentence_pairs(path, "plain").first
        ['He said "hi".']
    """
    if isinstance(layout, str):
        if layout not in PAIR_FILE_PRESETS:
            raise MeasureInputError(
                f"unknown pair file preset {layout!r}; choose one of "
                f"{', '.join(PAIR_FILE_PRESETS)}"
            )
        layout = PAIR_FILE_PRESETS[layout]
    if isinstance(paths, (str, Path)):
        paths = [paths]
    first: list[str] = []
    second: list[str] = []
    scores: list[float] = []
    files: list[int] = []
    lines: list[int] = []
    names = [str(path) for path in paths]
    for number, path in enumerate(paths):
        for line_number, fields in _read_lines(Path(path), layout, encoding):
            label = f"{path} line {line_number}"
            first.append(
                _sentence(fields, layout.first_column, "first sentence", label)
            )
            second.append(
                _sentence(fields, layout.second_column, "second sentence", label)
            )
            if layout.score_column is not None:
                scores.append(_score(fields, layout.score_column, label, line_number))
            files.append(number)
            lines.append(line_number)
    return SentencePairs(
        first=first,
        second=second,
        scores=np.asarray(scores, dtype=np.float64) if layout.score_column else None,
        files=np.asarray(files, dtype=np.int64),
        lines=np.asarray(lines, dtype=np.int64),
        file_names=names,
    )


def _read_lines(path: Path, layout: PairFileFormat, encoding: str):
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MeasureInputError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise MeasureInputError(f"{path}: is a folder, not a pair file") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise MeasureInputError(
            f"{path}: line {line} is not valid {encoding} (byte "
            f"0x{data[error.start]:02x} at byte column {column}); pass --encoding "
            "with the file's real encoding, such as cp1252 or latin-1, or re-save "
            "the file as UTF-8"
        ) from None
    except LookupError:
        raise MeasureInputError(
            f"unknown text encoding {encoding!r}; use a Python codec name such as "
            "utf-8 or cp1252"
        ) from None
    text = text.removeprefix("\ufeff")
    needed = max(
        column
        for column in (layout.first_column, layout.second_column, layout.score_column)
        if column is not None
    )
    for index, line in enumerate(text.split("\n")):
        line_number = index + 1
        if line_number <= layout.header_lines:
            continue
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split(layout.delimiter)
        if len(fields) < needed:
            role = _column_role(layout, len(fields) + 1)
            separator = "tab" if layout.delimiter == "\t" else repr(layout.delimiter)
            raise MeasureInputError(
                f"{path} line {line_number}: has {len(fields)} {separator}-separated "
                f"column(s), but column {len(fields) + 1} ({role}) is required; check "
                "the file's delimiter or the column options (--pair-format, "
                "--sentence-columns, --score-column)"
            )
        yield line_number, fields


def _column_role(layout: PairFileFormat, column: int) -> str:
    roles = {
        layout.first_column: "first sentence",
        layout.second_column: "second sentence",
    }
    if layout.score_column is not None:
        roles[layout.score_column] = "score"
    missing = [c for c in sorted(roles) if c >= column]
    return roles[missing[0]] if missing else "a column before the needed ones"


def _sentence(fields: list[str], column: int, role: str, label: str) -> str:
    sentence = fields[column - 1].strip()
    if not sentence:
        raise MeasureInputError(
            f"{label}: column {column} ({role}) is empty; remove the line or fix the "
            "column options"
        )
    return sentence


def _score(fields: list[str], column: int, label: str, line_number: int) -> float:
    text = fields[column - 1].strip()
    try:
        score = float(text)
    except ValueError:
        hint = (
            "; if this line is a header, pass --header-lines 1"
            if line_number == 1
            else "; check --score-column"
        )
        raise MeasureInputError(
            f"{label}: column {column} (score) is {text!r}, not a number{hint}"
        ) from None
    if not math.isfinite(score):
        raise MeasureInputError(
            f"{label}: column {column} (score) is {text!r}; scores must be finite"
        )
    return score


def read_pair_index(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an index file of positive pairs of rows.

    A ``.npy`` file contains an integer array of shape ``(P, 2)``. Any other file is
    text with two integers per line, separated by whitespace or a comma; blank
    lines and lines starting with ``#`` are skipped. Rows are counted from 0.

    Args:
        path: The index file.

    Returns:
        ``(first_rows, second_rows, lines)``: int64 arrays of the row indices
        of each pair, and the line number of each pair (from 1; the array row
        for ``.npy``).

    Raises:
        MeasureInputError: the file is missing, malformed, or has negative indices.
    """
    path = Path(path)
    if not path.is_file():
        raise MeasureInputError(f"{path}: file not found; check the path")
    if path.suffix.lower() == ".npy":
        try:
            pairs = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise MeasureInputError(
                f"{path}: cannot be read as a .npy array ({error})"
            ) from None
        if pairs.dtype.kind not in "iu":
            raise MeasureInputError(
                f"{path}: has dtype {pairs.dtype}, but pair indices must be integers; "
                "save pairs.astype(np.int64)"
            )
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise MeasureInputError(
                f"{path}: has shape {pairs.shape}, but a pair index must have shape "
                "(P, 2), one row (i, j) per positive pair"
            )
        pairs = pairs.astype(np.int64)
        lines = np.arange(len(pairs), dtype=np.int64)
    else:
        pairs, lines = _read_index_text(path)
    if len(pairs) == 0:
        raise MeasureInputError(f"{path}: contains no pairs")
    negative = np.flatnonzero((pairs < 0).any(axis=1))
    if len(negative):
        where = _index_location(path, lines[negative[0]])
        raise MeasureInputError(
            f"{where}: has a negative row index {pairs[negative[0]].tolist()}; rows "
            "are counted from 0"
        )
    return pairs[:, 0].copy(), pairs[:, 1].copy(), lines


def _index_location(path: Path, line: int) -> str:
    if path.suffix.lower() == ".npy":
        return f"{path} row index {line}"
    return f"{path} line {line}"


def _read_index_text(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        data = path.read_bytes()
        line = data.count(b"\n", 0, error.start) + 1
        raise MeasureInputError(
            f"{path} line {line}: is not UTF-8 text; a pair index has two integers "
            "per line, or is a .npy array of shape (P, 2)"
        ) from None
    pairs: list[tuple[int, int]] = []
    lines: list[int] = []
    for index, line in enumerate(text.split("\n")):
        fields = line.replace(",", " ").split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            pairs.append((int(fields[0]), int(fields[1])))
        except ValueError:
            raise MeasureInputError(
                f"{path} line {index + 1}: expected two integer row indices "
                f"'i j', got {line.strip()[:80]!r}"
            ) from None
        lines.append(index + 1)
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(
        lines, dtype=np.int64
    )
