"""What an adapter records of the data it was trained on, written by training and by a re-save from the run.

The training images' size and width in mm are what prediction brings a new scan to
(``samocta.decode.resample``). Two records say what its masks should look like, each as min, median
and max over subjects of the share of the scan covered and, with the scans' width in mm, the vessels'
mean width or the FAZ's area: ``label_stats`` of the training labels, and ``mask_stats`` of the
adapter's own prompt-free masks on its validation subjects at the epoch it was saved (the same model
and decode as ``predict``, so its own bias, e.g. vessels drawn a little wide, is in it). Prediction
holds each new mask against them (``samocta.predict.review``): a scan whose mask, or whose declared
width, contradicts them is flagged for review.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from samocta.config import TrainConfig
    from samocta.data import Dataset, Sample
    from samocta.model import LoRASam


def mask_stats(masks: Iterable[np.ndarray], task: str, fov_mm: float | None) -> dict[str, list[float]]:
    """Per-mask measurements as (min, median, max) each, in the adapter's ``label_stats`` form.

    Args:
        masks: bool ``(H, W)`` labels or predictions, one per subject.
        task: their task; fov_mm: their scans' width in mm (None: the physical measurements are left out).

    Returns:
        ``area_pct`` (share of the scan covered, %), and with ``fov_mm`` ``mean_width_um`` (vessel tasks)
        or ``faz_area_mm2`` (FAZ), as ``samocta.measure`` measures them.
    """
    from samocta.measure import measure

    rows: dict[str, list[float]] = {"area_pct": []}
    key = "faz_area_mm2" if task == "FAZ" else "mean_width_um"
    for mask in masks:
        mask = np.asarray(mask, bool)
        rows["area_pct"].append(100.0 * float(mask.mean()))
        if fov_mm is not None and mask.any():
            value = measure(mask, task, fov_mm)[key]
            if np.isfinite(value):
                rows.setdefault(key, []).append(float(value))
    return {name: [round(float(np.min(v)), 4), round(float(np.median(v)), 4), round(float(np.max(v)), 4)]
            for name, v in rows.items() if v}


def _text(stats: Mapping[str, list[float]]) -> str:
    return json.dumps(dict(stats), separators=(",", ":"), sort_keys=True)


def data_record(index: "Dataset", samples: Mapping[object, "Sample"], train_ids: Sequence, task: str) -> dict[str, str]:
    """The ``trained_with`` fields an adapter takes from its data: the training images' size, FoV, width in
    mm and dataset, and ``label_stats`` of its training labels (``samocta.model.lora.parse_stats``).

    Args:
        index: the run's dataset; samples: its subjects as read for the run; train_ids: the training subjects.
    """
    height, width = samples[train_ids[0]].image.shape[:2]
    record = {"image_size": f"{height}x{width}", "fov": index.fov, "dataset": index.name}
    if index.fov_mm is not None:
        record["fov_mm"] = repr(index.fov_mm)
    record["label_stats"] = _text(mask_stats((samples[sid].labels[task] for sid in train_ids), task, index.fov_mm))
    return record


def prediction_record(masks: Mapping[object, np.ndarray], index: "Dataset", task: str) -> dict[str, str]:
    """The ``mask_stats`` field: what the adapter's prompt-free masks of its validation subjects measure.

    Args:
        masks: id -> the prompt-free mask (``evaluate(..., keep=...)``, mode "none").
    """
    return {"mask_stats": _text(mask_stats(masks.values(), task, index.fov_mm))}


def measure_own_masks(model: "LoRASam", index: "Dataset", val_samples: Mapping[object, "Sample"],
                      config: "TrainConfig") -> dict[str, str]:
    """``prediction_record`` of ``model`` on the validation subjects, decoded as validation decodes them (the
    re-save from a run; training takes the masks its validation made)."""
    from samocta.evaluate.score import evaluate
    from samocta.prompts import PromptSpec

    keep: dict = {}
    evaluate(model, index, list(val_samples), config.task, {"none": PromptSpec.paper(config.task, "none")}, seed=config.seed,
             threshold=config.threshold, progress=False, samples=val_samples, keep=keep)
    return prediction_record({sid: mask for (sid, _), mask in keep.items()}, index, config.task)
