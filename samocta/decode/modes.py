"""The ways of prompting a scan that need no label, in one decode every caller shares.

"none" is SAM's padding point only; "auto" draws points from the model's own confident regions of a
prompt-free pass (``auto_prompt``); clicked points are decoded one after another as the click canvas
decodes them (``samocta.decode.session.ClickSession``). ``decode_prompt`` is the one decode of
``predict``, of its quality check and of the canvas; ``evaluate`` scores the label-derived modes
(global, local) and "auto" through ``prompt_specs`` and ``decode_auto``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch

from samocta.core.errors import InputError
from samocta.decode.resample import Resampling
from samocta.decode.views import decode_points
from samocta.prompts import MODES, Prompt, PromptSpec

if TYPE_CHECKING:
    from samocta.model import Embedding, MaskOutput, PromptableSam

# What a model can be scored with: no points, points from the label (global, local), or "auto":
# points the model draws from its own prompt-free pass (no label needed; see ``auto_prompt``).
EVAL_MODES = MODES + ("auto",)


class AutoPromptFallback(UserWarning):
    """An automatic prompt found no confident region: the prompt-free result stands."""


AUTO_FALLBACK = "auto prompt: no confident region in the prompt-free pass; its result stands"


def prompt_specs(task: str, modes: Sequence[str] | Mapping[str, PromptSpec]) -> dict[str, PromptSpec]:
    """The prompt recipe of each mode: as given, or the paper's for the task ("auto" draws global-mode
    counts from the model's own confident regions)."""
    if isinstance(modes, Mapping):
        return dict(modes)
    unknown = [m for m in modes if m not in EVAL_MODES]
    if unknown or not modes:
        raise InputError(f"prompt modes must be some of {EVAL_MODES}, got {list(modes)}")
    return {m: PromptSpec.paper(task, "global" if m == "auto" else m) for m in modes}


def _auto(model: "PromptableSam", embedding: "Embedding", spec: PromptSpec, rng: np.random.Generator,
          fallback_warning: bool = True) -> tuple[Prompt, "MaskOutput"]:
    from samocta.prompts import confident_points

    first = model.decode_unprompted(embedding)
    probability = torch.sigmoid(first.logits[0, 0].float()).cpu().numpy()
    points = confident_points(probability, spec.n_pos, spec.n_neg, rng, max_points=spec.max_points)
    if len(points) == 0:
        if fallback_warning:
            warnings.warn(AutoPromptFallback(AUTO_FALLBACK),
                          stacklevel=3)
        return points, first
    return points, model.decode(embedding, [points.coords], [points.labels])


def auto_prompt(
    model: "PromptableSam", embedding: "Embedding", spec: PromptSpec, rng: np.random.Generator, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes without a label: a prompt-free pass, points drawn from its confident regions
    (``samocta.prompts.confident_points`` with the spec's counts), then a prompted pass.

    Returns:
        ``(coords, labels, mask)``: the points (none when nothing was confident: then the mask is
        the prompt-free one, and an ``AutoPromptFallback`` warning says so) and the bool mask.
    """
    points, out = _auto(model, embedding, spec, rng)
    return points.coords, points.labels, out.masks(threshold)[0]


def decode_auto(model: "PromptableSam", resampling: Resampling, embeddings: list, spec: PromptSpec,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """``auto_prompt`` on each view: the points drawn (in the scan's frame) and the logits at the scan's size."""
    outs, coords, labels = [], [], []
    for view, embedding in zip(resampling.views, embeddings):
        points, out = _auto(model, embedding, spec, rng, fallback_warning=False)
        outs.append(out.logits)
        coords.append(resampling.points_from_view(points.coords, view))
        labels.append(np.asarray(points.labels, np.int64))
    coords, labels = np.concatenate(coords), np.concatenate(labels)
    if len(labels) == 0:
        warnings.warn(AutoPromptFallback(AUTO_FALLBACK),
                      stacklevel=2)
    return coords, labels, resampling.merge(outs)


def decode_prompt(model: "PromptableSam", resampling, embeddings: list, prompt: "str | tuple[np.ndarray, np.ndarray]",
                  rng: np.random.Generator) -> torch.Tensor:
    """One scan's logits ``(1, 1, H, W)`` for one way of prompting it, from its view embeddings
    (``samocta.decode.views.scan_views``): "none", "auto" (the recipe evaluate scores "auto" with) or clicked
    points ``(coords, labels)``, decoded one after another as the click canvas decodes them
    (``samocta.decode.session.ClickSession``). The one decode of ``predict`` and of its quality check."""
    from samocta.decode.session import ClickSession

    if isinstance(prompt, str) and prompt == "auto":
        spec = prompt_specs(getattr(model, "task", None), ["auto"])["auto"]
        return decode_auto(model, resampling, embeddings, spec, rng)[2]
    if isinstance(prompt, str) and prompt == "none":
        return decode_points(model, resampling, embeddings, np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
    coords, labels = prompt
    if np.asarray(labels).size == 0:
        return decode_points(model, resampling, embeddings, coords, labels)
    return ClickSession(model, resampling, embeddings).decode(coords, labels)
