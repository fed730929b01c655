"""Exceptions a user can cause, each with a message that says what is wrong and how to fix it."""

from __future__ import annotations


class SamOctaError(Exception):
    """Base class of every error the package raises on purpose.

    In a notebook (IPython), such an error shows as its one ``error:`` line, not as a traceback:
    it is the reader's input that needs changing, not the code.
    """

    def _render_traceback_(self) -> list[str]:  # IPython's hook for an exception's own display
        return [f"error: {self}"]


class DatasetError(SamOctaError, ValueError):
    """A dataset root, file or label is missing, unreadable or inconsistent.

    The message names every offending path and what was expected there.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


class InputError(SamOctaError, ValueError):
    """An argument given to a public function cannot be what it should be (dtype, shape, NaN, range)."""
