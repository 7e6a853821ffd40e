"""The one error type for user mistakes: a message, a hint, and an exit code; printed once, no traceback."""

from __future__ import annotations


class WorkbenchError(Exception):
    """A mistake the user can fix: bad input, a missing file, a wrong flag.

    The CLI prints ``message`` and ``hint`` on stderr and exits with ``exit_code``.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(WorkbenchError):
    """A command-line usage mistake (bad flag value, conflicting options): exit code 2."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """An exception's first line of text (its type name when it has none), for one-line error messages."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
