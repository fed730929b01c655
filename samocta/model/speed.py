"""Levers for speed and memory: activation checkpointing of the image encoder's blocks."""

from __future__ import annotations

import types

import torch
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.training and torch.is_grad_enabled():
        return checkpoint(self._samocta_forward, x, use_reentrant=False)
    return self._samocta_forward(x)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each encoder block's activations in the backward pass instead of storing them.

    Parameter names do not change (the blocks' own ``forward`` is wrapped), so adapters stay
    interchangeable between runs with and without it.
    """
    for block in model.sam.image_encoder.blocks:
        if not hasattr(block, "_samocta_forward"):
            block._samocta_forward = block.forward
            block.forward = types.MethodType(_checkpointed_forward, block)


def disable_checkpointing(model: torch.nn.Module) -> None:
    """Undo ``enable_checkpointing``."""
    for block in model.sam.image_encoder.blocks:
        if hasattr(block, "_samocta_forward"):
            block.forward = block._samocta_forward
            del block._samocta_forward
