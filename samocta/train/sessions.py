"""Simulated corrective-click sessions inside training (``train --prompt-mode clicks``).

The model learns to answer the clicks it will be given, as SAM itself was trained (Kirillov et al.,
ICCV 2023, appendix: points sampled from the error of the previous mask, that mask's logits fed
back): each click is the rule evaluation and the canvas use (``samocta.decode.session.next_click``)
on the model's own previous mask, decoded as ``ClickSession`` decodes the same clicks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from samocta.core.errors import InputError
from samocta.decode.session import next_click

if TYPE_CHECKING:
    from samocta.model import PromptableSam

@dataclass
class SessionStep:
    """One decode of ``training_sessions``: the samples decoded at it (their positions in the batch) and
    their logits ``(n, 1, H, W)`` at the images' size (with gradients)."""

    samples: list[int]
    logits: torch.Tensor


def training_sessions(
    model: "PromptableSam",
    embedding,
    targets: np.ndarray,
    counts: Sequence[int],
    threshold: float = 0.5,
    feedback: bool | None = None,
) -> list[SessionStep]:
    """Simulated corrective-click sessions on a batch: what ``train --prompt-mode clicks`` learns from.

    Sample ``i`` gets ``counts[i]`` clicks; 0 means one decode without points (the "none" mode). Click
    ``t`` is ``next_click`` on the model's own mask after click ``t - 1`` (an empty mask before the
    first: the session starts from "click", as ``evaluate`` and the canvas do), and is decoded with
    clicks ``1..t`` and, with ``feedback``, the low-resolution logits of decode ``t - 1`` as the mask
    prompt: the decode ``ClickSession`` makes for the same clicks. The fed-back logits are detached (an
    input, like the click); every decode keeps its gradients, so a loss can be taken on each step. A
    session whose mask already equals its label ends early (no click is left to make).

    Args:
        model: a ``PromptableSam``/``LoRASam`` (its own mask rule).
        embedding: ``Embedding`` of the B images (``model.embed``).
        targets: bool ``(B, H, W)``, the labels the clicks correct towards.
        counts: ``(B,)`` clicks per sample, each 0 or more.
        threshold: on probabilities, what makes the mask the next click looks at.
        feedback: feed the previous logits back; None: where the model's mask prompt takes them
            (``takes_logits``).

    Returns:
        the decodes in order (step 0: the samples with no clicks; then click 1, 2, ...).
    """
    from samocta.model.promptable import binarize, takes_logits

    targets = np.asarray(targets, bool)
    counts = [int(c) for c in counts]
    feedback = takes_logits(model) if feedback is None else bool(feedback)
    if targets.ndim != 3 or len(targets) != len(counts) or len(counts) != embedding.features.shape[0]:
        raise InputError(f"need one (H, W) target and one click count per embedded image: {embedding.features.shape[0]} "
                         f"images, targets {targets.shape}, {len(counts)} counts")
    if any(c < 0 for c in counts):
        raise InputError(f"click counts must be 0 or more, got {counts}")

    def decode(rows: list[int], coords: list[np.ndarray], labels: list[np.ndarray], mask_input):
        part = embedding.rows(rows)
        return model.decode(part, coords, labels, mask_input=mask_input)

    steps: list[SessionStep] = []
    unprompted = [i for i, c in enumerate(counts) if c == 0]
    if unprompted:
        empty = [np.zeros((0, 2), np.float32)] * len(unprompted)
        steps.append(SessionStep(unprompted, decode(unprompted, empty, [np.zeros(0, np.int64)] * len(unprompted), None).logits))
    points: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(counts))}
    marks: dict[int, list[int]] = {i: [] for i in range(len(counts))}
    preds = {i: np.zeros(targets.shape[1:], bool) for i in range(len(counts))}
    low_res: dict[int, torch.Tensor] = {}
    alive = {i for i, c in enumerate(counts) if c > 0}  # sessions with clicks still to make
    for t in range(1, max(counts, default=0) + 1):
        rows = []
        for i in sorted(alive):
            click = next_click(preds[i], targets[i]) if counts[i] >= t else None
            if click is None:  # its clicks are spent, or its mask is the label: the session is over
                alive.discard(i)
                continue
            points[i].append((click.x, click.y))
            marks[i].append(click.label)
            rows.append(i)
        if not rows:
            break
        given = torch.cat([low_res[i] for i in rows]) if feedback and t > 1 else None
        out = decode(rows, [np.asarray(points[i], np.float32) for i in rows], [np.asarray(marks[i], np.int64) for i in rows],
                     given)
        masks = binarize(out.logits.detach(), threshold)
        for k, i in enumerate(rows):
            preds[i] = masks[k]
            low_res[i] = out.selected_low_res[k : k + 1].detach()
        steps.append(SessionStep(rows, out.logits))
    return steps
