"""Clicks one after another: the one decode every click goes through, the click rule, and the points clicked.

Interactive segmentation is measured the same way across the field (Xu et al., CVPR 2016; Sofiiuk et
al., RITM, ICIP 2022; SAM, ICCV 2023): a simulated user looks at the current mask, clicks the centre of
its largest error region, positive in a missed region and negative in a false one, and the model
decodes again with every click so far and, as SAM's own interactive loop does, its previous
low-resolution logits as the mask prompt.

``ClickSession`` is that decode, the one every click goes through: the click canvas (kernel and, via
the exported graph, browser), ``predict`` with clicked points, the corrective-click evaluation
(``samocta.evaluate.clicks``) and training's click sessions (``samocta.train.sessions``). A mask is
a function of the ordered clicks: the session replays them from the longest prefix it has decoded,
so undo, removing a point and clear give what decoding those clicks afresh gives.

``next_click`` is the click rule; ``PromptState`` is the points a person clicked, with undo (the
canvas's model, and what ``predict --prompts`` reads a clicks file into).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from samocta.core.connectivity import EIGHT
from samocta.core.errors import InputError
from samocta.data.imageio import MAX_IMAGE_SIDE

if TYPE_CHECKING:
    from samocta.decode.resample import Resampling
    from samocta.model import PromptableSam

STARTS = ("click", "none")
"""Where a click sequence starts: "click" (nothing shown; the first click decodes with no mask prompt)
or "none" (the prompt-free mask, whose logits the first click is given)."""


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
class PromptState:
    """Prompt points and their labels, with undo and change callbacks.

    Points are ``(x, y)`` floats in image pixels with pixel centres at ``i + 0.5``; labels are
    1 (positive) or 0 (negative).
    """

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    size: tuple[int, int] | None = None  # (H, W) of the image: points must lie on it
    _history: list[tuple[str, Any]] = field(default_factory=list, repr=False)
    _callbacks: list[Callable[["PromptState"], None]] = field(default_factory=list, repr=False)

    @classmethod
    def from_defaults(cls, points: Sequence[Sequence[float]] | None, size: tuple[int, int] | None = None) -> "PromptState":
        """From ``[(x, y, label), ...]`` (the notebooks' ``DEFAULT_POINTS``), each point checked as ``add`` checks it."""
        state = cls(size=size)
        for x, y, label in points or []:
            state._check(x, y, label)
            state.points.append((float(x), float(y)))
            state.labels.append(int(label))
        return state

    def _check(self, x: float, y: float, label: int) -> None:
        if label not in (0, 1):
            raise ValueError(f"label must be 1 (positive) or 0 (negative), got {label}")
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"a point needs finite coordinates, got ({x}, {y})")
        if self.size is not None and not (0 <= x <= self.size[1] and 0 <= y <= self.size[0]):
            raise ValueError(f"point ({x}, {y}) lies outside the {self.size[1]} x {self.size[0]} image")
        if self.size is None and not (0 <= x <= MAX_IMAGE_SIDE and 0 <= y <= MAX_IMAGE_SIDE):
            raise ValueError(f"point ({x}, {y}) lies on no image: without the image's size, a point lies 0 to "
                             f"{MAX_IMAGE_SIDE} px from its top left corner (the largest image the package reads)")

    def on_change(self, callback: Callable[["PromptState"], None]) -> None:
        """Call ``callback(state)`` after every change."""
        self._callbacks.append(callback)

    def _changed(self) -> None:
        for callback in self._callbacks:
            callback(self)

    def add(self, x: float, y: float, label: int = 1) -> None:
        """Add a point: ``(x, y)`` on the image (pixel centres at ``i + 0.5``), label 1 or 0."""
        self._check(x, y, label)
        self.points.append((float(x), float(y)))
        self.labels.append(int(label))
        self._history.append(("add", None))
        self._changed()

    def remove_nearest(self, x: float, y: float, max_distance: float | None = None) -> int | None:
        """Remove the point nearest to ``(x, y)`` (within ``max_distance`` px if given); returns its index."""
        if not self.points:
            return None
        d = np.hypot(*(np.asarray(self.points) - (x, y)).T)
        i = int(np.argmin(d))
        if max_distance is not None and d[i] > max_distance:
            return None
        removed = (i, self.points.pop(i), self.labels.pop(i))
        self._history.append(("remove", removed))
        self._changed()
        return i

    def clear(self) -> None:
        if not self.points:
            return
        self._history.append(("clear", (list(self.points), list(self.labels))))
        self.points.clear()
        self.labels.clear()
        self._changed()

    def undo(self) -> bool:
        """Revert the last add, remove or clear; False if there is nothing to undo."""
        if not self._history:
            return False
        kind, data = self._history.pop()
        if kind == "add":
            self.points.pop()
            self.labels.pop()
        elif kind == "remove":
            i, point, label = data
            self.points.insert(i, point)
            self.labels.insert(i, label)
        else:
            self.points[:], self.labels[:] = data
        self._changed()
        return True

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``coords`` float32 ``(N, 2)`` and ``labels`` int64 ``(N,)``, as the model takes them."""
        coords = np.asarray(self.points, np.float32).reshape(-1, 2)
        return coords, np.asarray(self.labels, np.int64).reshape(-1)

    def to_json(self) -> str:
        """The points as strict JSON (every value finite, checked when it was added)."""
        return json.dumps({"points": [list(p) for p in self.points], "labels": self.labels}, allow_nan=False)
