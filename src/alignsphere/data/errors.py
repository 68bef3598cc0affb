"""Exceptions raised by the dataset loaders."""

from __future__ import annotations

from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing.

    The message names every path the loader looked at and explains how to obtain
    the data, because nothing is ever downloaded.

    Attributes:
        searched: The paths the loader looked at, in the order it tried them.
    """

    def __init__(self, message: str, searched: list[Path] | None = None) -> None:
        super().__init__(message)
        self.searched = list(searched or [])


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded (truncated, empty or not an image).

    Attributes:
        path: The file that failed to decode.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"Failed to decode image file {self.path}: {reason}. "
            "Replace or delete the file and load the dataset again."
        )


class InvalidDatasetFileError(ValueError):
    """A dataset file has the right name but the wrong content or size."""
