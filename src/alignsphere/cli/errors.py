"""Errors that subcommands raise for bad input, and the message for a failed write."""

from __future__ import annotations

import errno
from pathlib import Path

# Errors of a write into an output folder that the user can fix: a full disk or
# quota, a read-only file system, missing permission, or a file where a folder
# goes.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
    | {errno.ENOTDIR, errno.EEXIST}
)


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def output_write_error(error: OSError, output: object, resume_hint: str) -> UsageError:
    """Build the one-line error for a failed write into the ``--output`` folder.

    Args:
        error: The ``OSError``; its ``errno`` should be in :data:`WRITE_ERRNOS`.
        output: The ``--output`` value, named when the error has no file name.
        resume_hint: What rerunning the command keeps, such as "a run resumes
            from its last whole checkpoint".
    """
    target = error.filename or output
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free disk space or choose an --output folder on another disk"
    else:
        fix = "choose a writable --output folder"
    return UsageError(
        f"cannot write {target}: {reason}; {fix}, then rerun the same command "
        f"({resume_hint})"
    )


def check_output_file(path: str | None, flag: str) -> None:
    """Reject an output file path that cannot be written, before any work starts.

    Args:
        path: The value of ``flag``; None or ``-`` (standard output) pass.
        flag: The option's name for the message, such as ``--json``.

    Raises:
        UsageError: If the path is a folder, or a part of it is a file.
    """
    if path is None or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(
            f"{flag} {path} is a folder; give a file name, such as "
            f"{target / 'report.json'}"
        )
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"{flag} {path}: {parent} is a file, not a folder; give a "
                    "path inside a folder"
                )
            return
