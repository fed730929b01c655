"""Exceptions a user can cause, each with a message that says what is wrong and how to fix it."""

from __future__ import annotations

import errno
import sys
import traceback
from typing import Any, Callable


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


def os_error_line(exc: OSError, output: str | None = None, resumable: bool = False) -> str:
    """One line for a failed file operation: what, where, and what to do.

    Args:
        output: the command's output option (``--out``), named in the advice; None: the command has none.
        resumable: the command goes on from its last checkpoint with ``--resume``, which the advice says.
    """
    where = f" {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    # the advice names only what the command has: its output option, and --resume where it resumes
    folder = f"output folder ({output})" if output else "output folder"
    again = "run it again with --resume: it goes on from its last checkpoint" if resumable else "run the command again"
    hints = {
        errno.ENOSPC: f"free disk space and {again}",
        errno.EDQUOT: f"free disk space and {again}",
        errno.EROFS: f"choose a writable {folder}",
        errno.EACCES: f"choose an {folder} you may write to, or fix its permissions",
        errno.EPERM: f"choose an {folder} you may write to, or fix its permissions",
        errno.ENOTDIR: f"a path names a file where a folder is needed: choose another {folder}",
        errno.EEXIST: f"a path names a file where a folder is needed: choose another {folder}",
        errno.ENOENT: "check the path",
    }
    hint = hints.get(exc.errno, "check the path and the disk")
    return f"{what}{':' + where if where else ''}; {hint}"


def exit_status(run: Callable[..., Any], *args: Any, debug: bool = False, output: str | None = None,
                resumable: bool = False) -> int:
    """``run(*args)`` as a command: its exit status, or 1 with one ``error:`` line for a mistake a user
    can make (``debug``: the traceback as well); 130 on Ctrl-C. Anything else is a bug and propagates.
    ``output`` and ``resumable`` shape the advice of a failed file operation (``os_error_line``)."""
    try:
        return int(run(*args) or 0)
    except (SamOctaError, OSError) as exc:
        if debug:
            traceback.print_exc()
        line = exc if not isinstance(exc, OSError) or isinstance(exc, SamOctaError) else os_error_line(exc, output, resumable)
        print(f"error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every file written so far is complete" + (" (run it again with --resume to go on)" if resumable
                                                                          else ""), file=sys.stderr)
        return 130
