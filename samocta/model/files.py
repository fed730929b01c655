"""Writing safetensors files that are identical byte for byte when their contents are.

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

import torch


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(safetensors_bytes(tensors, metadata))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
