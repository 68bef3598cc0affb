"""Errors that subcommands raise for bad input, and the message for a failed write."""

from __future__ import annotations

import errno

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
