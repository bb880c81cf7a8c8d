"""The exception types for failures that are not bugs, and the exit codes the CLI gives them.

Library code raises :class:`UserInputError` for anything the user can fix (a missing file or column, an unknown
task or label, an empty split, a malformed row, a wrong type, a path that cannot be written). The CLI turns it into
one line on stderr and exit code 2; Python callers can catch it as a ``ValueError``.

:class:`EnvironmentFailure` is the machine failing under correct input (a full disk or quota, no memory left):
exit code 3, one line, and what was committed before it (a study's stored trials) is intact.
"""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["EXIT_BAD_INPUT", "EXIT_ENVIRONMENT", "EnvironmentFailure", "UserInputError", "is_disk_full"]

EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class UserInputError(ValueError):
    """Bad input from the user: the message names the problem in one line."""


class EnvironmentFailure(RuntimeError):
    """The environment failed (disk full, out of memory): the message says what and what to do, in one line."""


def is_disk_full(error: BaseException) -> bool:
    """An OSError of a full disk or an exhausted quota, or SQLite's "database or disk is full"."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, sqlite3.Error):  # sqlite_errorname is Python 3.11+; the message is SQLite's own
        return getattr(error, "sqlite_errorname", None) == "SQLITE_FULL" or "disk is full" in str(error)
    return False
