"""Atomic writes of the text files that commands produce."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file, flush it to disk, then rename it.

    A reader sees either the old file (or none) or the whole new one, also after
    a crash or a full disk part way through, and a failed write leaves no
    temporary file behind.

    Args:
        path: The file to write; its parent folders are created.
        text: The content, written as UTF-8.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
