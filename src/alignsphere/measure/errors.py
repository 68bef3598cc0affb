"""The error raised for bad input to :mod:`alignsphere.measure`."""

from __future__ import annotations


class MeasureInputError(ValueError):
    """Invalid input file or option, described in one line.

    The message names the file (and the row or line where there is one) and the
    fix, so that the command line can print it as it is, without a traceback.
    """
