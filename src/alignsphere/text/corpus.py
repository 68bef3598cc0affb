"""Read plain-text corpora: encoding detection, Gutenberg boilerplate, paragraphs.

A corpus is a text file or a folder of ``*.txt`` files (searched recursively,
read in sorted order), one document per file. Each file is decoded as UTF-8
(a byte-order mark is dropped) or, when that fails, as cp1252, the Windows
encoding of many older English texts. A file that is neither is rejected.
Latin-1 is never a fallback, because it accepts every byte and would hide a
wrong guess.

Lines are split on ``"\\n"`` only, after CRLF and lone CR endings are turned
into ``"\\n"``. ``str.splitlines`` is not used, because it also breaks at
U+0085, U+2028 and other characters that occur inside lines of real files.

Two layouts are supported:

- ``paragraphs``: prose hard-wrapped at a fixed width, with paragraphs
  separated by blank lines (Project Gutenberg books). The lines of a paragraph
  are joined with single spaces, and the Project Gutenberg header and footer
  are removed when the ``*** START OF ...`` and ``*** END OF ...`` markers are
  present.
- ``lines``: one sentence per line (BookCorpus-style dumps). Empty lines are
  dropped.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alignsphere.text.errors import TextDataError, TextDataNotFoundError

logger = logging.getLogger(__name__)

LAYOUTS = ("paragraphs", "lines")

_UTF8_BOM = b"\xef\xbb\xbf"
_START_MARKER = re.compile(
    r"^\s*\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK", re.IGNORECASE
)
_END_MARKER = re.compile(
    r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK", re.IGNORECASE
)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Document:
    """One corpus file, decoded and cut into paragraphs (or sentences).

    Attributes:
        path: The file read.
        encoding: ``utf-8`` or ``cp1252``.
        paragraphs: Paragraphs with line wraps joined (``paragraphs`` layout),
            or the file's non-empty lines (``lines`` layout).
        boilerplate_removed: True when a Gutenberg header or footer was cut.
    """

    path: Path
    encoding: str
    paragraphs: list[str]
    boilerplate_removed: bool


def decode_text(data: bytes, source: str | os.PathLike[str]) -> tuple[str, str]:
    """Decode file bytes as UTF-8 or, failing that, as cp1252.

    Args:
        data: The raw bytes of a file.
        source: The file name, used in the error message.

    Returns:
        ``(text, encoding)`` with encoding ``utf-8`` or ``cp1252``.

    Raises:
        TextDataError: If the bytes are neither UTF-8 nor cp1252. Bytes 0x81,
            0x8D, 0x8F, 0x90 and 0x9D are undefined in cp1252.
    """
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError as cp1252_error:
            position = cp1252_error.start
            raise TextDataError(
                f"{source} is neither UTF-8 (invalid byte 0x{data[utf8_error.start]:02X} "
                f"at offset {utf8_error.start}) nor cp1252 (undefined byte "
                f"0x{data[position]:02X} at offset {position}); convert it to UTF-8, "
                "for example with iconv -f ENCODING -t UTF-8"
            ) from None


def split_lines(text: str) -> list[str]:
    """Split text into lines at ``\\n``, ``\\r\\n`` and ``\\r`` only.

    Unlike ``str.splitlines``, U+0085 and other Unicode separators stay inside
    their line.
    """
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def strip_gutenberg_boilerplate(lines: list[str]) -> tuple[list[str], bool]:
    """Remove the Project Gutenberg header and footer when their markers are present.

    Everything up to and including the ``*** START OF THE PROJECT GUTENBERG
    EBOOK ... ***`` line is the header, and everything from the ``*** END OF
    ...`` line on is the footer (licence text). Files without the markers are
    returned unchanged.

    Returns:
        ``(lines, removed)`` where ``removed`` is True when anything was cut.
    """
    start = next((i for i, line in enumerate(lines) if _START_MARKER.match(line)), None)
    first = 0 if start is None else start + 1
    end = next(
        (i for i in range(first, len(lines)) if _END_MARKER.match(lines[i])), None
    )
    last = len(lines) if end is None else end
    return lines[first:last], start is not None or end is not None


def join_paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs; blank lines separate paragraphs.

    Runs of whitespace, the line breaks included, become one space.
    """
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped:
            current.append(stripped)
        elif current:
            paragraphs.append(_WHITESPACE.sub(" ", " ".join(current)))
            current = []
    if current:
        paragraphs.append(_WHITESPACE.sub(" ", " ".join(current)))
    return paragraphs


def read_document(path: str | os.PathLike[str], layout: str = "paragraphs") -> Document:
    """Read one corpus file.

    Args:
        path: A text file in UTF-8 or cp1252.
        layout: ``paragraphs`` (hard-wrapped prose, Gutenberg markers removed)
            or ``lines`` (one sentence per line).

    Returns:
        The decoded :class:`Document`.

    Raises:
        TextDataNotFoundError: If the file does not exist.
        TextDataError: If the bytes are neither UTF-8 nor cp1252.
        ValueError: On an unknown layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"invalid layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    path = Path(path)
    if not path.is_file():
        raise TextDataNotFoundError(
            f"corpus file {path} not found; give a text file or a folder of .txt files",
            [path],
        )
    text, encoding = decode_text(path.read_bytes(), path)
    lines = split_lines(text)
    removed = False
    if layout == "paragraphs":
        lines, removed = strip_gutenberg_boilerplate(lines)
        paragraphs = join_paragraphs(lines)
    else:
        paragraphs = [_WHITESPACE.sub(" ", line).strip() for line in lines]
        paragraphs = [line for line in paragraphs if line]
    logger.debug(
        "read %s (%s, %d paragraphs, boilerplate removed: %s)",
        path,
        encoding,
        len(paragraphs),
        removed,
    )
    return Document(path, encoding, paragraphs, removed)


def list_corpus_files(root: str | os.PathLike[str]) -> list[Path]:
    """Return the corpus files under ``root``: the file itself, or ``*.txt`` inside.

    Raises:
        TextDataNotFoundError: If ``root`` does not exist or contains no ``.txt`` file.
    """
    root = Path(root).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise TextDataNotFoundError(
            f"corpus {root} not found; give a text file or a folder of .txt files "
            "(for example Project Gutenberg books saved as plain text)",
            [root],
        )
    files = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise TextDataNotFoundError(
            f"corpus folder {root} contains no .txt file; put one document per "
            ".txt file there",
            [root],
        )
    return files


def iter_documents(
    root: str | os.PathLike[str], layout: str = "paragraphs"
) -> Iterator[Document]:
    """Yield the documents of a corpus one file at a time, in sorted path order."""
    for path in list_corpus_files(root):
        yield read_document(path, layout)
