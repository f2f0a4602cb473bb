"""Exceptions whose message is meant for the user.

The CLI prints a ``CryogenError`` as one line (no traceback) and exits with a non-zero
code; library callers can catch it like any other exception.
"""

from __future__ import annotations

__all__ = ["CryogenError", "InputError", "OutputError"]


class CryogenError(Exception):
    """An error caused by the user's input or environment, with a readable message."""


class InputError(CryogenError, ValueError):
    """A file or value the user gave cannot be used (names the file and the problem)."""


class OutputError(CryogenError, OSError):
    """An output cannot be written (exists without ``--overwrite``, folder not writable...)."""
