"""How a scan meets a model: its views at the model's pixel size, their embeddings, and points decoded on them.

A scan of another pixel size than the adapter's training images is resampled to it and, when larger,
cut into overlapping views (``samocta.decode.resample``); every decode of a scan (evaluation, prediction, the
click canvas, corrective clicks) goes through these two functions, so each sees the scan alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from samocta.decode.resample import Resampling, frame_of, plan_resampling

if TYPE_CHECKING:
    from samocta.model import PromptableSam


def scan_views(model: "PromptableSam", image: np.ndarray, pixel_um: float | None, where: str) -> tuple[Resampling, list]:
    """A scan brought to the pixel size the model was trained at (``samocta.decode.resample``), and each view's
    embedding: once per scan, reused by every prompt mode."""
    resampling = plan_resampling(image.shape[:2], pixel_um, frame_of(getattr(model, "trained_with", {})), where)
    return resampling, [model.embed(view[None]) for view in resampling.image_views(image)]


def decode_points(model: "PromptableSam", resampling: Resampling, embeddings: list, coords: np.ndarray,
                  labels: np.ndarray) -> torch.Tensor:
    """Logits ``(1, 1, H, W)`` at the scan's size for points ``(x, y)`` in the scan's frame (none: no prompt).

    Each view decodes with the points that fall inside it; with points given, a view holding none
    of them is left out (what was asked for lies elsewhere).
    """
    prompted = np.asarray(labels).size > 0
    outs = []
    for view, embedding in zip(resampling.views, embeddings):
        c, lab = resampling.points_to_view(coords, labels, view)
        outs.append(None if prompted and len(lab) == 0 else model.decode(embedding, [c], [lab]).logits)
    return resampling.merge(outs)
