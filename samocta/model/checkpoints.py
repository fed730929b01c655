"""The checkpoint facts every builder reads: the model types, the official files and their SHA-256,
the shipped tiny weights, and reading a checkpoint into a state dict.

This module sits below the builders (``build``) and the downloader (``download``), so that both
name one ``CheckpointError`` and one table without importing each other.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Literal

import torch

from samocta.core.errors import SamOctaError
from samocta.core.files import sha256_file

ModelType = Literal["tiny", "vit_b", "vit_l", "vit_h"]
MODEL_TYPES: tuple[str, ...] = typing.get_args(ModelType)
# image-encoder width -> type, and block count -> type (the two facts a state dict gives away)
_WIDTH_TO_TYPE = {192: "tiny", 768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_DEPTH_TO_TYPE = {6: "tiny", 12: "vit_b", 24: "vit_l", 32: "vit_h"}

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
# file name, size in bytes (None: not recorded), SHA-256 (see the project's checkpoint reference)
OFFICIAL = {
    "vit_h": ("sam_vit_h_4b8939.pth", 2_564_550_879, "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    "vit_l": ("sam_vit_l_0b3195.pth", None, "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    "vit_b": ("sam_vit_b_01ec64.pth", 375_042_383, "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
}
ASSETS = Path(__file__).resolve().parent.parent / "assets"
TINY_WEIGHTS = ASSETS / "sam_tiny.safetensors"
TINY_SHA256_FILE = ASSETS / "sam_tiny.sha256"


class CheckpointError(SamOctaError, ValueError):
    """A checkpoint is missing, corrupt, or made for another model type."""


def tiny_weights_path() -> Path:
    """The shipped tiny-SAM weights, after checking their SHA-256 against the recorded one."""
    if not TINY_WEIGHTS.is_file() or not TINY_SHA256_FILE.is_file():
        raise CheckpointError(
            f"the pretrained tiny SAM is missing ({TINY_WEIGHTS}); reinstall the package, or make it with "
            "'python -m samocta pretrain-tiny'"
        )
    expected = TINY_SHA256_FILE.read_text().split()[0]
    actual = sha256_file(TINY_WEIGHTS)
    if actual != expected:
        raise CheckpointError(f"{TINY_WEIGHTS}: SHA-256 {actual} differs from the recorded {expected}; the file is damaged")
    return TINY_WEIGHTS


def checkpoint_type(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The model type a SAM state dict fits, read from its shapes (None if it is no SAM checkpoint)."""
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is not None and int(pos.shape[-1]) in _WIDTH_TO_TYPE:
        return _WIDTH_TO_TYPE[int(pos.shape[-1])]
    blocks = {k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")}
    return _DEPTH_TO_TYPE.get(len(blocks))


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint: ``.safetensors``, or a ``torch.save`` state dict loaded with ``weights_only=True``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict (got {type(state).__name__})")
    odd = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:  # a weight that is no tensor (a number, a list, a string): no SAM checkpoint as released
        raise CheckpointError(f"{path}: not a state dict of tensors (entries that are no tensors: {odd[:3]})")
    # checkpoints saved from DataParallel carry a "module." prefix
    return {k.removeprefix("module."): v for k, v in state.items()}
