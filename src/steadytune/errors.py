"""The one exception type for bad user input.

Library code raises :class:`UserInputError` for anything the user can fix (a missing file or column, an unknown
task or label, an empty split, a malformed row, a wrong type). The CLI turns it into one line on stderr and exit
code 2; Python callers can catch it as a ``ValueError``.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user: the message names the problem in one line."""
