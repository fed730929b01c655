"""SAM's input frame: the resize SAM applies to an image, and points mapped into it, in numpy and torch.

Project points are ``(x, y)`` with pixel centres at ``i + 0.5``. segment-anything puts pixel
centres on integers and its prompt encoder adds 0.5 to every point before encoding it, so a
project point ``p`` goes in as ``p * s - 0.5`` (``s`` the resize factor per axis) and lands on the
same place of the resized image: ``ResizeLongestSide.apply_coords(p) = p * s`` is where SAM then
puts it. The reference code's ``i * s + 0.5`` is off by up to 0.35 px at 304 px. Both forms live
here side by side, as segment-anything's ``ResizeLongestSide`` keeps its numpy and torch forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def resized_shape(original_hw: tuple[int, int], target_length: int = 1024) -> tuple[int, int]:
    """The ``(H, W)`` SAM resizes an image to: longest side ``target_length``, rounded as SAM rounds."""
    h, w = original_hw
    scale = target_length / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def _scale_xy(original_hw: tuple[int, int], target_length: int) -> tuple[float, float]:
    new_h, new_w = resized_shape(original_hw, target_length)
    return new_w / original_hw[1], new_h / original_hw[0]


def to_model_frame(coords: np.ndarray, original_hw: tuple[int, int], target_length: int = 1024) -> np.ndarray:
    """Map ``(x, y)`` points (pixel centres at ``i + 0.5``) into SAM's resized input frame.

    Args:
        coords: float ``(..., 2)`` in original pixels.
        original_hw: ``(H, W)`` of the original image.
        target_length: the encoder's input side (1024 for the official models).

    Returns:
        float32 ``(..., 2)`` in SAM's frame, as ``point_coords``.
    """
    scale = np.array(_scale_xy(original_hw, target_length), np.float64)
    return (np.asarray(coords, np.float64) * scale - 0.5).astype(np.float32)


def to_model_frame_torch(coords: "torch.Tensor", original_hw: tuple[int, int], target_length: int = 1024) -> "torch.Tensor":
    """``to_model_frame`` for a tensor ``(..., 2)``, on its device and in its dtype (what the model uses)."""
    return coords * coords.new_tensor(_scale_xy(original_hw, target_length)) - 0.5


def from_model_frame(coords: np.ndarray, original_hw: tuple[int, int], target_length: int = 1024) -> np.ndarray:
    """Inverse of ``to_model_frame``."""
    scale = np.array(_scale_xy(original_hw, target_length), np.float64)
    return ((np.asarray(coords, np.float64) + 0.5) / scale).astype(np.float32)
