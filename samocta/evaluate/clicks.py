"""Simulated corrective clicks scored against a label: Dice per click, NoC@85 and NoC@90.

Each click is the rule of ``samocta.decode.session.next_click`` on the current mask, decoded by the
``ClickSession`` the canvas and ``predict`` use. Dice after each click is the curve; the clicks
needed to reach a Dice of 0.85 and 0.90 are NoC@85 and NoC@90 (Xu et al., CVPR 2016; Sofiiuk et al.,
RITM, ICIP 2022).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import torch

from samocta.core.errors import InputError
from samocta.decode.session import STARTS, Click, ClickSession, feeds_back, next_click

if TYPE_CHECKING:
    import pandas as pd

    from samocta.data import Sample
    from samocta.decode.resample import Resampling
    from samocta.model import PromptableSam

NOC_TARGETS = (0.85, 0.90)
CURVE_CLICKS = (1, 3, 5, 10)  # the clicks the summary reports Dice at


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

    from samocta.decode.views import scan_views
    from samocta.prompts import fixed_rng, label_tasks

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
