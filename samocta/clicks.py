"""Clicks one after another: the decode that feeds each mask back, and simulated corrective clicks.

Interactive segmentation is measured the same way across the field (Xu et al., CVPR 2016; Sofiiuk et
al., RITM, ICIP 2022; SAM, ICCV 2023): a simulated user looks at the current mask, clicks the centre of
its largest error region, positive in a missed region and negative in a false one, and the model
decodes again with every click so far and, as SAM's own interactive loop does, its previous
low-resolution logits as the mask prompt. Dice after each click is the curve; the clicks needed to
reach a Dice of 0.85 and 0.90 are NoC@85 and NoC@90.

``ClickSession`` is that decode, the one every click goes through: the click canvas (kernel and, via
the exported graph, browser), ``predict`` with clicked points and the corrective-click evaluation.
A mask is a function of the ordered clicks: the session replays them from the longest prefix it
has decoded, so undo, removing a point and clear give what decoding those clicks afresh gives.

``next_click`` is the click rule; ``click_curve`` runs it against a label; ``noc`` reads the curve.
``training_sessions`` is the same loop inside training (``train --prompt-mode clicks``): the model
learns to answer the clicks it will be given, as SAM itself was trained (Kirillov et al., ICCV 2023,
appendix: points sampled from the error of the previous mask, that mask's logits fed back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from samocta.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from samocta.data import Sample
    from samocta.model import PromptableSam
    from samocta.resample import Resampling

STARTS = ("click", "none")
"""Where a click sequence starts: "click" (nothing shown; the first click decodes with no mask prompt)
or "none" (the prompt-free mask, whose logits the first click is given)."""
NOC_TARGETS = (0.85, 0.90)
CURVE_CLICKS = (1, 3, 5, 10)  # the clicks the summary reports Dice at
EIGHT = np.ones((3, 3), bool)  # 8-connectivity: a one-pixel diagonal vessel is one region


CLICK_FEEDBACK = "click_feedback"  # the adapter metadata that says how its clicks were trained to be decoded


def feeds_back(model: "PromptableSam") -> bool:
    """Whether a model's clicks are decoded with the previous logits as the mask prompt, by default.

    An adapter trained on click sessions (``train --prompt-mode clicks``) records how it was trained
    (``CLICK_FEEDBACK`` in its metadata) and is decoded that way. Otherwise: the official SAM was
    trained so (its interactive training feeds each mask back); the tiny SAM's mask prompt carries its
    clicks' map and was never trained on logits, and feeding them back lowers its Dice after 10
    corrective clicks (measured: ``benchmarks/bench_clicks.py``), so it decodes each click from the
    clicks alone.
    """
    from samocta.model.promptable import takes_logits

    recorded = getattr(model, "trained_with", {}).get(CLICK_FEEDBACK)
    if recorded is not None:
        return recorded == "True"
    return takes_logits(model)


@dataclass(frozen=True)
class Click:
    """A simulated click: ``(x, y)`` image pixels (pixel centres at ``i + 0.5``), label 1 (positive) or 0
    (negative), and the area in pixels of the error region it was placed in."""

    x: float
    y: float
    label: int
    region_px: int


def next_click(pred: np.ndarray, target: np.ndarray, rng: np.random.Generator | None = None) -> Click | None:
    """The corrective click a simulated user makes on ``pred`` to bring it towards ``target``.

    The rule: the error regions are the 8-connected components of the missed pixels
    (``target & ~pred``) and of the false ones (``pred & ~target``); the click goes in the largest
    region (by pixel count; a tie goes to the missed one), at its centre: the pixel farthest from the
    region's boundary (Euclidean distance, the image border counting as boundary). The label is 1 in a
    missed region, 0 in a false one. Several pixels equally far: ``rng`` picks one (None: the first in
    row-major order).

    Args:
        pred, target: bool ``(H, W)``.
        rng: for ties only.

    Returns:
        the ``Click``, or None when ``pred`` equals ``target`` (nothing to correct).
    """
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape or pred.ndim != 2:
        raise InputError(f"prediction and label must be two (H, W) masks of one size, got {pred.shape} and {target.shape}")
    best: tuple[int, int, np.ndarray, tuple[slice, slice]] | None = None  # (area, label, component, its box)
    for label, error in ((1, target & ~pred), (0, pred & ~target)):
        if not error.any():
            continue
        regions, _ = ndimage.label(error, structure=EIGHT)
        areas = np.bincount(regions.ravel())
        areas[0] = 0
        biggest = int(areas.argmax())
        if best is None or areas[biggest] > best[0]:
            box = ndimage.find_objects((regions == biggest).astype(np.int32))[0]
            best = (int(areas[biggest]), label, regions[box] == biggest, box)
    if best is None:
        return None
    area, label, component, box = best
    # distance to the nearest pixel outside the region; the zero frame makes the image border a boundary
    distance = ndimage.distance_transform_edt(np.pad(component, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(distance == distance.max())
    i = 0 if rng is None or len(rows) == 1 else int(rng.integers(len(rows)))
    return Click(float(cols[i] + box[1].start) + 0.5, float(rows[i] + box[0].start) + 0.5, label, area)


@dataclass
class _Step:
    logits: torch.Tensor | None  # (1, 1, H, W) at the scan's size; None: nothing decoded
    low_res: list[torch.Tensor | None]  # per view: (1, 1, 4E, 4E) the selected candidate, the next mask prompt
    iou: float = float("nan")  # the decoder's predicted IoU of the selected mask (mean over the views decoded)


@dataclass
class ClickSession:
    """Ordered clicks on one scan, decoded one after another from its cached view embeddings.

    Click k is decoded with clicks 1..k and, when ``feedback`` is on, the low-resolution logits of the
    decode before it as SAM's mask prompt (per view: a view holding none of the clicks so far keeps
    what it had). ``start`` says what comes before the first click (``STARTS``).

    Args:
        model: a ``PromptableSam``/``LoRASam`` (its own mask rule).
        resampling, embeddings: the scan's views and their embeddings (``samocta.evaluate.scan_views``).
        feedback: feed the previous logits back (SAM's interactive loop); False: each decode sees the
            clicks only; None: the model's default (``feeds_back``).
        start: "click" or "none".
    """

    model: "PromptableSam"
    resampling: "Resampling"
    embeddings: list
    feedback: bool | None = None
    start: str = "click"
    coords: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    _steps: list[_Step] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise InputError(f"a click sequence starts from one of {STARTS}, got {self.start!r}")
        if self.feedback is None:
            self.feedback = feeds_back(self.model)
        self._steps = [self._first()]

    @torch.inference_mode()
    def _first(self) -> _Step:
        if self.start == "click":
            return _Step(None, [None] * len(self.embeddings))
        outs = [self.model.decode_unprompted(e) for e in self.embeddings]
        iou = float(np.mean([float(o.iou[0, o.selected[0]]) for o in outs]))
        return _Step(self.resampling.merge([o.logits for o in outs]), [o.selected_low_res for o in outs], iou)

    @torch.inference_mode()
    def _decode(self, previous: _Step, coords: np.ndarray, labels: np.ndarray) -> _Step:
        logits, low_res, ious = [], [], []
        for view, embedding, before in zip(self.resampling.views, self.embeddings, previous.low_res):
            c, lab = self.resampling.points_to_view(coords, labels, view)
            if len(lab) == 0:  # none of the clicks lies in this view: what was asked for lies elsewhere
                logits.append(None)
                low_res.append(before)
                continue
            out = self.model.decode(embedding, [c], [lab], mask_input=before if self.feedback else None)
            logits.append(out.logits)
            low_res.append(out.selected_low_res)
            ious.append(float(out.iou[0, out.selected[0]]))
        return _Step(self.resampling.merge(logits), low_res, float(np.mean(ious)) if ious else float("nan"))

    def decode(self, coords: np.ndarray | Sequence, labels: np.ndarray | Sequence) -> torch.Tensor | None:
        """Logits ``(1, 1, H, W)`` at the scan's size after the ordered clicks ``coords`` (``(N, 2)``
        ``(x, y)``, pixel centres at ``i + 0.5``) with ``labels`` (``(N,)``, 1 or 0); None for no
        clicks from start "click". Replays from the longest prefix already decoded."""
        coords = np.asarray(coords, np.float32).reshape(-1, 2)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if len(coords) != len(labels):
            raise InputError(f"need one label per click: {len(coords)} clicks, {len(labels)} labels")
        same = 0
        for (x, y), label, (cx, cy), cl in zip(coords.tolist(), labels.tolist(), self.coords, self.labels):
            if (np.float32(x), np.float32(y), label) != (np.float32(cx), np.float32(cy), cl):
                break
            same += 1
        del self._steps[same + 1:], self.coords[same:], self.labels[same:]
        for k in range(same, len(labels)):
            self._steps.append(self._decode(self._steps[-1], coords[: k + 1], labels[: k + 1]))
            self.coords.append((float(coords[k, 0]), float(coords[k, 1])))
            self.labels.append(int(labels[k]))
        return self._steps[-1].logits

    def add(self, x: float, y: float, label: int) -> torch.Tensor:
        """One more click; the logits ``(1, 1, H, W)`` after it."""
        return self.decode(np.array(self.coords + [(x, y)], np.float32), np.array(self.labels + [label]))

    @property
    def logits(self) -> torch.Tensor | None:
        """The current logits ``(1, 1, H, W)`` (None: nothing decoded yet)."""
        return self._steps[-1].logits

    @property
    def predicted_iou(self) -> float:
        """The decoder's own estimate of the current mask's IoU (NaN: nothing decoded)."""
        return self._steps[-1].iou


@dataclass
class ClickCurve:
    """One subject's simulated corrective clicks.

    Attributes:
        dice: ``(max_clicks + 1,)`` Dice after 0, 1, ... clicks (0 clicks: the start's mask; an empty
            mask for start "click"). Once the mask equals the label no click is left to make and Dice
            stays 1.
        clicks: the clicks made, in order.
    """

    dice: np.ndarray
    clicks: list[Click]


def click_curve(
    model: "PromptableSam",
    resampling: "Resampling",
    embeddings: list,
    target: np.ndarray,
    max_clicks: int = 10,
    threshold: float = 0.5,
    rng: np.random.Generator | None = None,
    start: str = "click",
    feedback: bool | None = None,
) -> ClickCurve:
    """Up to ``max_clicks`` corrective clicks (``next_click``) on one scan against its label, each decoded
    by a ``ClickSession``; Dice (``samocta.metrics.dice``) after each.

    Args:
        model, resampling, embeddings: as ``ClickSession`` takes them.
        target: bool ``(H, W)``, the label at the scan's size.
        max_clicks: at least 1.
        threshold: on probabilities (``binarize``).
        rng: for the click rule's ties.
        start, feedback: as ``ClickSession`` takes them.
    """
    from samocta.metrics import dice
    from samocta.model.promptable import binarize

    if max_clicks < 1:
        raise InputError(f"--max-clicks must be at least 1, got {max_clicks}")
    target = np.asarray(target, bool)
    session = ClickSession(model, resampling, embeddings, feedback=feedback, start=start)
    pred = np.zeros_like(target) if session.logits is None else binarize(session.logits, threshold)[0]
    scores, clicks = [dice(pred, target)], []
    for _ in range(max_clicks):
        click = next_click(pred, target, rng)
        if click is None:
            scores.append(scores[-1])
            continue
        clicks.append(click)
        pred = binarize(session.add(click.x, click.y, click.label), threshold)[0]
        scores.append(dice(pred, target))
    return ClickCurve(np.asarray(scores, np.float64), clicks)


def noc(dice: np.ndarray, target: float, max_clicks: int | None = None) -> tuple[int, bool]:
    """Clicks needed to reach ``target`` Dice on a curve (index = clicks), and whether it was reached.

    A curve that never reaches it counts as ``max_clicks`` (default: its last index), as the field
    counts it; the second value says so.
    """
    dice = np.asarray(dice, np.float64)
    top = len(dice) - 1 if max_clicks is None else max_clicks
    reached = np.nonzero(dice[: top + 1] >= target)[0]
    return (int(reached[0]), True) if len(reached) else (top, False)


def evaluate_clicks(
    model: "PromptableSam",
    index,
    ids: Sequence,
    task: str,
    max_clicks: int = 10,
    seed: int = 0,
    threshold: float = 0.5,
    start: str = "click",
    feedback: bool | None = None,
    fold: int | str | None = None,
    progress: bool = True,
    samples: "Mapping[int, Sample] | None" = None,
) -> "pd.DataFrame":
    """Simulated corrective clicks (``click_curve``) on each subject: one row per (subject, click).

    Args:
        model: a ``PromptableSam``/``LoRASam``.
        index, ids: a dataset index and the subjects to score; task: the label clicked towards.
        max_clicks: clicks per subject (at least 1).
        seed: the click rule's ties draw from ``fixed_rng(seed, id)``.
        threshold, start, feedback: as ``click_curve`` takes them.
        fold: recorded in every row.
        samples: subjects already read (training's validation reads them once per run), by id.

    Returns:
        a DataFrame with id, fold, task, fov, start, feedback, click (0 .. max_clicks), dice, and the
        click made at that step (x, y, label, region_px; NaN at click 0 and after the label was met).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from samocta.prompts import fixed_rng, label_tasks
    from samocta.views import scan_views

    if max_clicks < 1:
        raise InputError(f"--max-clicks must be at least 1, got {max_clicks}")
    if start not in STARTS:
        raise InputError(f"--click-start must be one of {', '.join(STARTS)}, got {start!r}")
    used = feeds_back(model) if feedback is None else bool(feedback)
    rows = []
    model.eval()
    for sid in tqdm(list(ids), desc=f"clicks {task}", disable=not progress, leave=False):
        sample = samples[sid] if samples and sid in samples else index.load(sid, tasks=label_tasks(task, index.tasks))
        with torch.inference_mode():
            resampling, embeddings = scan_views(model, sample.image, sample.pixel_um, f"subject {sample.id}")
        curve = click_curve(model, resampling, embeddings, sample.labels[task], max_clicks, threshold,
                            fixed_rng(seed, sample.id), start, used)
        for k, score in enumerate(curve.dice):
            click = curve.clicks[k - 1] if 0 < k <= len(curve.clicks) else None
            rows.append({"id": sid, "fold": fold, "task": task, "fov": sample.fov, "start": start, "feedback": used,
                         "click": k, "dice": float(score),
                         "x": click.x if click else np.nan, "y": click.y if click else np.nan,
                         "label": click.label if click else np.nan, "region_px": click.region_px if click else np.nan})
    return pd.DataFrame(rows)


def click_summary(curves: "pd.DataFrame", by: Sequence[str] = ("task", "fov", "start", "feedback")) -> "pd.DataFrame":
    """Mean Dice at 1, 3, 5 and 10 clicks and NoC@85 / NoC@90 per group of ``evaluate_clicks`` rows.

    A subject that never reaches a target counts as the curve's maximum number of clicks (as the field
    counts it); ``not reached @85`` / ``@90`` say how many subjects did so. Dice at a click beyond the
    curve's end is NaN.

    Returns:
        one row per group (``by`` plus any of trained_mode, setup, data_source, model_type present):
        ``dice@1`` ... ``dice@10``, ``NoC@85``, ``NoC@90``, ``not reached @85``, ``not reached @90``,
        ``max_clicks``, ``n_subjects``.
    """
    import pandas as pd

    keys = [c for c in ("model_type", "data_source", "trained_mode", "setup", *by) if c in curves.columns]
    keys = list(dict.fromkeys(keys))
    out = []
    for group, rows in curves.groupby(keys, sort=False, dropna=False):
        group = group if isinstance(group, tuple) else (group,)
        wide = rows.pivot_table(index="id", columns="click", values="dice", aggfunc="first").sort_index(axis=1)
        top = int(wide.columns.max())
        record = dict(zip(keys, group))
        for k in CURVE_CLICKS:
            record[f"dice@{k}"] = float(wide[k].mean()) if k in wide.columns else float("nan")
        for target in NOC_TARGETS:
            counted = [noc(curve, target, top) for curve in wide.to_numpy()]
            name = f"{round(target * 100)}"
            record[f"NoC@{name}"] = float(np.mean([n for n, _ in counted]))
            record[f"not reached @{name}"] = int(sum(not ok for _, ok in counted))
        record["max_clicks"] = top
        record["n_subjects"] = int(len(wide))
        out.append(record)
    return pd.DataFrame(out)


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
    from samocta.model.promptable import Embedding, binarize, takes_logits

    targets = np.asarray(targets, bool)
    counts = [int(c) for c in counts]
    feedback = takes_logits(model) if feedback is None else bool(feedback)
    if targets.ndim != 3 or len(targets) != len(counts) or len(counts) != embedding.features.shape[0]:
        raise InputError(f"need one (H, W) target and one click count per embedded image: {embedding.features.shape[0]} "
                         f"images, targets {targets.shape}, {len(counts)} counts")
    if any(c < 0 for c in counts):
        raise InputError(f"click counts must be 0 or more, got {counts}")

    def decode(rows: list[int], coords: list[np.ndarray], labels: list[np.ndarray], mask_input):
        part = Embedding(embedding.features[rows], embedding.input_size, embedding.original_size)
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
