"""Exceptions whose message is meant for the user.

Messages are in the library's own terms (file names, parameter names such as
``tilt_min``).  ``advice`` names, as one word, what the caller can change to get past the
error (``"overwrite"``, ``"resume"``, ``"pixel_size"``...); the command line turns the
parameter names and the advice into its flags (``--tilt-min``, "use --overwrite to replace
it") and prints the result as one line.  Library callers can catch these like any other
exception.
"""

from __future__ import annotations

__all__ = ["CryogenError", "InputError", "OutputError"]


class CryogenError(Exception):
    """An error caused by the user's input or environment, with a readable message.

    Parameters
    ----------
    message
        One line naming the file or value and the problem.
    advice
        What the caller can change, as a parameter name (``"overwrite"``, ``"resume"``,
        ``"pixel_size"``), or ``None``.
    """

    def __init__(self, message: str, *, advice: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice


class InputError(CryogenError, ValueError):
    """A file or value the user gave cannot be used (names the file and the problem)."""


class OutputError(CryogenError, OSError):
    """An output cannot be written (exists without ``overwrite``, folder not writable...)."""
