"""Writing files atomically (a temporary file, then a rename), and reproducibly.

Every file the package writes for later (configs, histories, checkpoints, adapters, weights) goes
through here, so an interruption never leaves a half-written file behind.

safetensors keeps the ``__metadata__`` strings in a hash map, so with two or more entries their
order in the header, and so the file's bytes and SHA-256, change from process to process even for
identical tensors. The header is rewritten here with the entries sorted; the tensor data and the
offsets in it are untouched, so every safetensors reader reads the file as before.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch


def _tmp_for(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    path = Path(path)
    tmp = _tmp_for(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically."""
    path = Path(path)
    tmp = _tmp_for(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
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


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` atomically (a temporary file, then a rename), readable by everyone (0o644)."""
    path = Path(path)
    tmp = _tmp_for(path)
    tmp.write_bytes(safetensors_bytes(tensors, metadata))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
