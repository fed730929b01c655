"""Fetching the official SAM checkpoints: cache folder, resumable transfer, SHA-256 check."""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from samocta.core.errors import SamOctaError
from samocta.core.files import atomic_write_text, open_in_place, sha256_file
from samocta.model.checkpoints import BASE_URL, OFFICIAL, CheckpointError


def cache_dir() -> Path:
    """``$SAMOCTA_CACHE``, or ``~/.cache/samocta``."""
    return Path(os.environ.get("SAMOCTA_CACHE", Path.home() / ".cache" / "samocta")).expanduser()


def download(url: str, dest: str | os.PathLike, sha256: str, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` if present, and verify its SHA-256.

    A server that ignores the ``Range`` request restarts the transfer from zero. On a checksum
    mismatch the file is deleted and ``CheckpointError`` names both hashes.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if part.is_symlink() or (part.exists() and not part.is_file()):  # refused before anything is asked of the server
        raise CheckpointError(f"{part} is a link or not a regular file, so not a download of this package's to resume; "
                              "remove it and download again")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
    except OSError as exc:
        raise CheckpointError(f"cannot keep a checkpoint in {dest.parent} ({exc.strerror or exc}); set SAMOCTA_CACHE to "
                              "a folder you may write to") from None
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # no resume support: start again
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            flags = os.O_WRONLY | (os.O_APPEND if have else os.O_TRUNC)
            with os.fdopen(open_in_place(part, flags), "ab" if have else "wb") as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                got = have
                while chunk := response.read(1 << 20):
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        if total is not None and got < total:  # the server closed the connection early
            raise CheckpointError(
                f"download of {url} stopped at {got} of {total} bytes; {part} keeps what arrived and the next call resumes it"
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            pass
        else:
            kept = f"; {part} keeps what arrived and the next call resumes it" if part.exists() and part.stat().st_size else ""
            raise CheckpointError(f"download of {url} failed: HTTP {exc.code}{kept}") from exc
    except SamOctaError:  # the .part file refused (a link, a FIFO): nothing was written, nothing resumes
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        # the network: what arrived is kept and resumed
        kept = f"; {part} keeps what arrived and the next call resumes it" if part.exists() and part.stat().st_size else ""
        raise CheckpointError(f"download of {url} failed ({getattr(exc, 'reason', exc)}){kept}") from exc
    except OSError as exc:  # this machine: the folder or the disk
        where = exc.filename or part
        raise CheckpointError(f"download of {url} failed writing {where} ({exc.strerror or exc}); free disk space or set "
                              "SAMOCTA_CACHE to a folder you may write to") from exc
    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise CheckpointError(f"{url}: SHA-256 {actual} differs from the expected {sha256}; the file was deleted, try again")
    os.replace(part, dest)
    return dest


def download_checkpoint(model_type: str, progress: bool = True) -> Path:
    """The official checkpoint of ``model_type`` in the cache, downloaded and verified if missing.

    ``SAMOCTA_CHECKPOINT_URL`` overrides the base URL (a mirror, or a test server).
    """
    if model_type not in OFFICIAL:
        raise CheckpointError(f"no official checkpoint for {model_type!r}; official types: {tuple(OFFICIAL)}")
    name, size, sha = OFFICIAL[model_type]
    dest = cache_dir() / name
    if dest.is_file() and verified(dest, sha):
        return dest
    base = os.environ.get("SAMOCTA_CHECKPOINT_URL", BASE_URL)
    path = download(base.rstrip("/") + "/" + name, dest, sha, progress)
    _record_verified(path, sha)
    return path


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_verified(path: Path, sha256: str) -> None:
    atomic_write_text(path.with_name(path.name + ".verified"), json.dumps({"sha256": sha256, **_stamp(path)}) + "\n")


def verified(path: Path, sha256: str) -> bool:
    """Whether a cached file is the official one: its SHA-256 is checked once, and remembered with the
    file's size and modification time; a file that changed since, or whose hash is wrong, is deleted
    (the caller downloads it again)."""
    record = path.with_name(path.name + ".verified")
    try:
        if json.loads(record.read_text()) == {"sha256": sha256, **_stamp(path)}:
            return True
    except (OSError, ValueError):
        pass
    if sha256_file(path) == sha256:
        _record_verified(path, sha256)
        return True
    path.unlink()
    record.unlink(missing_ok=True)
    return False
