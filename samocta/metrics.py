"""Evaluation metrics on binary masks, per sample, and their summary over tasks, modes and folds.

Every metric takes ``pred`` and ``gt`` as bool ``(H, W)`` arrays at label resolution.

Empty masks, one rule for every overlap metric (Dice, Jaccard, precision, recall, clDice):
both empty scores 1.0 (a correct "nothing here"); exactly one empty scores 0.0. The reference code
scored empty/empty as 0, which punishes correct answers in local mode and on small components.
Distances (HD, HD95) are 0.0 when both are empty and undefined (NaN) when exactly one is;
``summarize`` leaves NaN out of means, reports how many values each mean used, and counts the
empty predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
from scipy import ndimage

from samocta.core.connectivity import EIGHT, FOUR

if TYPE_CHECKING:
    import pandas as pd

try:  # OpenCV's exact Euclidean distance transform and labelling are 2-3x faster than scipy's
    import cv2
except ImportError:  # pragma: no cover - scipy gives the same numbers
    cv2 = None

METRICS = ("dice", "jaccard", "precision", "recall", "cldice", "hd95", "betti0_error", "betti1_error")
# what summarize averages by default: the metrics, and HD95 in µm where evaluation added it
SUMMARY_METRICS = METRICS[:6] + ("hd95_um",) + METRICS[6:]


# How each summary column is headed where a reader sees it: the metric, its unit, what a count counts.
# The metrics are defined once, in the evaluation chapter's "The metrics" section.
COLUMN_LABELS = {
    "dice": "Dice",
    "jaccard": "Jaccard",
    "precision": "precision",
    "recall": "recall",
    "cldice": "clDice",
    "hd95": "HD95 (px)",
    "hd95_um": "HD95 (µm)",
    "betti0_error": "Betti-0 error (components)",
    "betti1_error": "Betti-1 error (holes)",
    "n_subjects": "subjects scored",
    "n_folds": "folds",
    "empty_predictions": "empty predictions (subjects)",
    "empty_targets": "nothing to find (subjects)",
}


def column_label(column: str) -> str:
    """The reader's heading of a ``summarize`` column: ``"hd95_um"`` -> ``"HD95 (µm)"``,
    ``"dice_std"`` -> ``"Dice, std"``, ``"hd95_n"`` -> ``"HD95 (px), subjects with a value"``."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    base, _, stat = column.rpartition("_")
    if base in COLUMN_LABELS and stat == "std":
        return f"{COLUMN_LABELS[base]}, std"
    if base in COLUMN_LABELS and stat == "n":
        return f"{COLUMN_LABELS[base]}, subjects with a value"
    return column


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, mask in (("pred", pred), ("gt", gt)):
        mask = np.asarray(mask)
        if mask.dtype.kind == "f" and not np.isfinite(mask).all():  # NaN would count as foreground
            raise ValueError(f"{name} has NaN or infinite values; pass bool masks")
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D masks of one shape, got {pred.shape} and {gt.shape}")
    return pred, gt


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if both_empty:
        return 1.0
    return float(num / den) if den else 0.0


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """``(TP, FP, FN, TN)`` pixel counts; FP = predicted but not in gt, FN = in gt but not predicted."""
    pred, gt = _pair(pred, gt)
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice = 2 TP / (2 TP + FP + FN)."""
    tp, fp, fn, _ = confusion(pred, gt)
    return _ratio(2 * tp, 2 * tp + fp + fn, tp + fp + fn == 0)


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard (IoU) = TP / (TP + FP + FN)."""
    tp, fp, fn, _ = confusion(pred, gt)
    return _ratio(tp, tp + fp + fn, tp + fp + fn == 0)


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """Precision = TP / (TP + FP): how much of the prediction is right."""
    tp, fp, fn, _ = confusion(pred, gt)
    return _ratio(tp, tp + fp, tp + fp + fn == 0)


def recall(pred: np.ndarray, gt: np.ndarray) -> float:
    """Recall (sensitivity) = TP / (TP + FN): how much of the truth is found."""
    tp, fp, fn, _ = confusion(pred, gt)
    return _ratio(tp, tp + fn, tp + fp + fn == 0)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The 1-px skeleton of a bool mask (scikit-image's ``skeletonize``)."""
    from skimage.morphology import skeletonize

    return skeletonize(np.asarray(mask, bool))


def cldice(pred: np.ndarray, gt: np.ndarray) -> float:
    """clDice (Shit et al., CVPR 2021): harmonic mean of topology precision and sensitivity.

    Topology precision = |skel(pred) inside gt| / |skel(pred)|; topology sensitivity =
    |skel(gt) inside pred| / |skel(gt)|. Skeletons by scikit-image.
    """
    pred, gt = _pair(pred, gt)
    if not pred.any() or not gt.any():
        return 1.0 if not pred.any() and not gt.any() else 0.0
    sp, sg = skeleton(pred), skeleton(gt)
    tprec = np.count_nonzero(sp & gt) / max(np.count_nonzero(sp), 1)
    tsens = np.count_nonzero(sg & pred) / max(np.count_nonzero(sg), 1)
    return float(2 * tprec * tsens / (tprec + tsens)) if tprec + tsens > 0 else 0.0


def _surface(mask: np.ndarray) -> np.ndarray:
    """Bool mask of the boundary pixels: foreground with a 4-neighbour outside (or off the image)."""
    return mask & ~ndimage.binary_erosion(mask, FOUR, border_value=0)


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of every pixel to the nearest ``True`` pixel of ``mask``."""
    if cv2 is not None:
        d = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        # distances between pixel centres are square roots of integers: snapping d^2 to the integer
        # makes OpenCV's float32 result exact, and the same in every run (its threads may differ)
        return np.sqrt(np.rint(d.astype(np.float64) ** 2))
    return ndimage.distance_transform_edt(~mask)


def _count_components(mask: np.ndarray, connectivity: int) -> int:
    if cv2 is not None:
        return int(cv2.connectedComponents(mask.astype(np.uint8), connectivity=connectivity)[0]) - 1
    return int(ndimage.label(mask, EIGHT if connectivity == 8 else FOUR)[1])


def hausdorff(pred: np.ndarray, gt: np.ndarray, percentile: float = 100.0) -> float:
    """Symmetric Hausdorff distance between mask boundaries, in pixels, on pixel coordinates.

    For each boundary pixel of one mask, the Euclidean distance to the nearest boundary pixel of
    the other; the ``percentile`` of each direction; the larger of the two (the MONAI/MedPy
    convention). ``percentile=95`` gives HD95. (The reference code fed whole image rows to
    ``directed_hausdorff`` as points, so a far false-positive pixel scored 1 instead of its distance.)
    """
    pred, gt = _pair(pred, gt)
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        return float("nan")
    sp, sg = _surface(pred), _surface(gt)
    d_pg = _distance_to(sg)[sp]
    d_gp = _distance_to(sp)[sg]
    return float(max(np.percentile(d_pg, percentile), np.percentile(d_gp, percentile)))


def hd95(pred: np.ndarray, gt: np.ndarray) -> float:
    """95th-percentile Hausdorff distance in pixels (see ``hausdorff``)."""
    return hausdorff(pred, gt, 95.0)


def betti_numbers(mask: np.ndarray) -> tuple[int, int]:
    """(beta0, beta1) of a bool mask: components with 8-connectivity, holes as 4-connected
    background components of the zero-padded mask that do not reach its border."""
    padded = np.pad(np.asarray(mask, bool), 1)
    return _count_components(padded, 8), _count_components(~padded, 4) - 1


def betti_errors(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """``(|beta0(pred) - beta0(gt)|, |beta1(pred) - beta1(gt)|)``."""
    pred, gt = _pair(pred, gt)
    (p0, p1), (g0, g1) = betti_numbers(pred), betti_numbers(gt)
    return abs(p0 - g0), abs(p1 - g1)


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of their union plus a 1-px empty frame.

    Every metric here is unchanged by it (skeletons, distances, components and holes only
    depend on the masks and the empty space around them), and small structures get cheap.
    """
    rows = np.flatnonzero((pred | gt).any(axis=1))
    if rows.size == 0:
        return pred[:0, :0], gt[:0, :0]
    cols = np.flatnonzero((pred | gt).any(axis=0))
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.pad(pred[sl], 1), np.pad(gt[sl], 1)


def all_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Every metric of ``METRICS`` for one pair, sharing the confusion counts."""
    pred, gt = _crop_to_union(*_pair(pred, gt))
    tp = int(np.count_nonzero(pred & gt))
    fp, fn = int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(gt)) - tp
    both_empty = tp + fp + fn == 0
    b0, b1 = betti_errors(pred, gt)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "jaccard": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "cldice": cldice(pred, gt),
        "hd95": hd95(pred, gt),
        "betti0_error": b0,
        "betti1_error": b1,
    }


def summarize(
    records: Iterable[dict[str, Any]] | Any,
    by: Sequence[str] = ("task", "fov", "trained_mode", "mode"),
    fold: str = "fold",
    metrics: Sequence[str] | None = None,
) -> "pd.DataFrame":
    """Mean +- std of per-sample metrics per group and fold, and across folds, with honest counts.

    Args:
        records: per-sample dicts (or a DataFrame) with the ``by`` columns, ``fold`` (optional)
            and metric columns; a ``pred_pixels`` column (as ``samocta.evaluate`` writes) adds the
            count of empty predictions.
        by: grouping columns (those present are used).
        fold: the fold column; if present, each group gets one row per fold (mean and std over
            that fold's subjects) and one row with ``fold="all"`` (mean and std over the fold
            means: the spread between folds, not between subjects).
        metrics: metric columns (default: those of ``SUMMARY_METRICS`` present).

    Returns:
        a pandas DataFrame indexed by ``by`` (+ fold) with, per metric, ``<metric>`` (mean over the
        values that exist), ``<metric>_std`` and ``<metric>_n`` (how many values the mean used: HD95
        is NaN where exactly one mask is empty, and such samples are not averaged as if they were
        scored); ``n_subjects`` (every sample of the group), ``n_folds`` (with a fold column) and
        ``empty_predictions`` (samples whose prediction has no pixel; with ``pred_pixels``) and
        ``empty_targets`` (samples with nothing to find, which score 1 when nothing is predicted;
        with ``target_pixels``).
    """
    import pandas as pd

    df = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if df.empty:
        raise ValueError("summarize needs at least one record")
    keys = [k for k in by if k in df.columns]
    metrics = [m for m in (metrics or SUMMARY_METRICS) if m in df.columns]
    has_fold = fold in df.columns
    df = df.assign(_empty=df["pred_pixels"] == 0) if "pred_pixels" in df.columns else df
    df = df.assign(_empty_target=df["target_pixels"] == 0) if "target_pixels" in df.columns else df
    group_keys = keys + ([fold] if has_fold else [])
    grouped = df.groupby(group_keys, sort=True, dropna=False) if group_keys else df.groupby(lambda _: "all")
    per = grouped[metrics].agg(["mean", "std", "count"])
    per.columns = [m if stat == "mean" else f"{m}_{'n' if stat == 'count' else stat}" for m, stat in per.columns]
    per["n_subjects"] = grouped.size()
    if "_empty" in df.columns:
        per["empty_predictions"] = grouped["_empty"].sum().astype(int)
    if "_empty_target" in df.columns:  # an empty target scores 1 with an empty prediction: say how often
        per["empty_targets"] = grouped["_empty_target"].sum().astype(int)
    if not has_fold:
        return per
    per["n_folds"] = 1
    folds = per.reset_index()
    means = folds.groupby(keys, sort=True, dropna=False) if keys else folds.groupby(lambda _: 0)
    across = means[metrics].agg(["mean", "std"])
    across.columns = [m if stat == "mean" else f"{m}_{stat}" for m, stat in across.columns]
    sums = [c for c in per.columns if c.endswith("_n") or c in ("n_subjects", "empty_predictions", "empty_targets", "n_folds")]
    across = across.join(means[sums].sum()).reset_index()
    across[fold] = "all"
    table = pd.concat([folds.astype({fold: str}), across], ignore_index=True)
    order = [c for m in metrics for c in (m, f"{m}_std", f"{m}_n")]
    order += [c for c in ("n_subjects", "n_folds", "empty_predictions", "empty_targets") if c in per.columns]
    return table.set_index(group_keys).sort_index()[order]
