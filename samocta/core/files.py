"""Writing files atomically (a temporary file, then a rename), and reproducibly.

Every file the package writes (configs, histories, checkpoints, adapters, weights, results,
masks, synthetic data) goes through here, so an interruption never leaves a half-written file
behind; logs that grow line by line are appended and synced (``append_line``).

safetensors keeps the ``__metadata__`` strings in a hash map, so with two or more entries their
order in the header, and so the file's bytes and SHA-256, change from process to process even for
identical tensors. The header is rewritten here with the entries sorted; the tensor data and the
offsets in it are untouched, so every safetensors reader reads the file as before.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from samocta.core.errors import SamOctaError

if TYPE_CHECKING:  # torch takes seconds to import; only two writers need it
    import pandas as pd
    import torch


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], sync: bool = True) -> None:
    """Write a file atomically: ``write(fh)`` fills a temporary file of its own beside ``path``,
    which is flushed (and, with ``sync``, synced to disk), then renamed over ``path``.

    The temporary name is unique to each writer, so two writers of one path never share a file,
    and a reader sees either the old file or the complete new one, even if the writer is killed.
    ``sync`` also makes the new file survive a crash of the machine itself; it costs a disk flush
    per file, which bulk, regenerable outputs (images) skip.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0o600; written files are readable as any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())


# What a spreadsheet takes for the start of a formula in a text cell (OWASP's list for CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(value: Any) -> Any:
    """A text cell as a spreadsheet shows it without running it: one that starts like a formula (a scan
    named ``=1+2.png``) gets a leading apostrophe, as spreadsheet programs themselves mark text; numbers
    and other text are left as they are."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def plain_text(cell: str) -> str:
    """A text cell read back from a CSV this package wrote: ``spreadsheet_text`` undone."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def atomic_write_csv(frame: "pd.DataFrame", path: str | os.PathLike, **to_csv: Any) -> None:
    """A pandas DataFrame as CSV, atomically (``to_csv`` options pass through); text cells that a
    spreadsheet would run as a formula are written as text (``spreadsheet_text``)."""
    text = frame.select_dtypes(include=["object", "string"]).columns
    risky = [c for c in text if frame[c].map(lambda v: spreadsheet_text(v) is not v).any()]
    if risky:
        frame = frame.copy()
        for column in risky:
            frame[column] = frame[column].map(spreadsheet_text)
    atomic_write_text(path, frame.to_csv(**to_csv))


class LinkRefusedError(SamOctaError, OSError):
    """A file the package would write in place is a symbolic link or not a regular file."""


def open_in_place(path: str | os.PathLike, flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """Open a file to write in place (append, lock, resume a transfer), never through a link.

    Atomic writes replace a link rather than write through it; a file written in place would follow
    a link to whatever it points at and overwrite it. So the last path component is opened with
    ``O_NOFOLLOW``, and anything but a regular file (a FIFO, a device, a folder) is refused as
    well: without ``O_NONBLOCK`` a FIFO with no reader would block for ever.

    Args:
        path: the file; created (mode 0o644) if missing.
        flags: ``os.open`` flags besides ``O_CREAT``, ``O_NOFOLLOW`` and ``O_NONBLOCK``, which are added.

    Returns:
        the file descriptor, in blocking mode.

    Raises:
        LinkRefusedError: the path is a symbolic link or not a regular file.
    """
    import errno
    import fcntl
    import stat

    path = Path(path)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
            raise LinkRefusedError(f"{path} is a symbolic link or not a regular file; the package writes only regular files "
                                   "of its own (a link would be written through): remove it, or choose another folder") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefusedError(f"{path} is not a regular file; the package writes only regular files of its own: remove it, "
                               "or choose another folder")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log (e.g. a training curve), flushed to disk before returning.

    Logs grow by whole lines: a reader sees every line written before, and a crash at worst
    leaves the last line incomplete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(open_in_place(path), "a") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class UnreadableFileError(SamOctaError, ValueError):
    """A file the package reads (JSON, CSV, a list of points) is missing, not a regular file, too
    large, torn or not what it should be."""


def read_bytes(path: str | os.PathLike, what: str, fix: str, max_bytes: int = 64 << 20) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, never blocking on a FIFO or a device.

    Args:
        what: what the file should be ("run config", "clicks file", ...); fix: what to do, for the message.

    Raises:
        UnreadableFileError: missing, not a regular file, or larger than ``max_bytes``.
    """
    import stat

    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: no such {what}; {fix}") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot read this {what} ({exc.strerror}); {fix}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{path}: not a regular file, so not a {what}; {fix}")
        if info.st_size > max_bytes:
            raise UnreadableFileError(f"{path}: {info.st_size:,} bytes, more than a {what} holds ({max_bytes:,} at most); {fix}")
        return fh.read(max_bytes + 1)[: max_bytes + 1]


def read_json(path: str | os.PathLike, what: str, fix: str, max_bytes: int = 64 << 20) -> Any:
    """A JSON file read as ``read_bytes`` reads it; torn, binary or absurdly nested files are refused.

    Raises:
        UnreadableFileError: as ``read_bytes``, or not UTF-8 JSON (nested too deep counts as not JSON).
    """
    data = read_bytes(path, what, fix, max_bytes)
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:  # JSON takes the last of two equal keys: which one the writer meant is unknown
        raise UnreadableFileError(f"{path}: the key {exc.args[0]!r} appears twice in one object of this {what}; keep one; "
                                  f"{fix}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise UnreadableFileError(f"{path}: not a readable {what} ({reason}); {fix}") from None


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    atomic_write(path, lambda fh: torch.save(obj, fh))


def safetensors_bytes(tensors: "dict[str, torch.Tensor]", metadata: dict[str, str] | None = None) -> bytes:
    """``safetensors.torch.save`` with a deterministic header."""
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    if "__metadata__" in header:
        header = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start stays 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def save_safetensors(tensors: "dict[str, torch.Tensor]", path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as safetensors with a deterministic header, atomically."""
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata))


class FolderInUseError(SamOctaError, RuntimeError):
    """A folder is locked by another process (e.g. two trainings into one run folder)."""


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while the block runs, so no second writer can mix its files in.

    The lock is an ``flock`` on ``folder/.lock``, released by the kernel if the process dies, so a
    killed run never leaves a stale lock behind. The file names the holder (``what``, its process
    and host) for the message a second process gets.

    Raises:
        FolderInUseError: another process holds the lock; the message names it.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = open_in_place(folder / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise FolderInUseError(f"{folder} is in use by {holder}; wait for it to finish, or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (process {os.getpid()} on {socket.gethostname()})".encode(), 0)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
