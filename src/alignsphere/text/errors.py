"""Exceptions of the text package."""

from __future__ import annotations

from alignsphere.data.errors import DatasetNotFoundError, InvalidDatasetFileError


class TextDataNotFoundError(DatasetNotFoundError):
    """A corpus, SentEval or STS-B folder or file is missing."""


class TextDataError(InvalidDatasetFileError):
    """A text file exists but cannot be used: undecodable bytes, empty, malformed."""
