"""Reading one subject's files, the same way for every dataset form: projections into SAM's channels,
binary labels, and the checks that refuse a label that cannot be right (with every problem named by path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from samocta.core.errors import DatasetError
from samocta.data.imageio import read_image
from samocta.data.labelcheck import DIHEDRAL, dihedral, label_problems

VESSEL_TASKS = ("RV", "Capillary", "Artery", "Vein")


def orientation_scores(image: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Pearson correlation of an image with each dihedral transform of a label.

    A vessel label correlates clearly with its own projection (0.52 on 3M 10441) and hardly at
    all with any rotated or flipped copy (<= 0.05), so the arg-max says how a label is oriented.

    Args:
        image: ``(H, W)`` projection, any numeric dtype.
        label: bool ``(H, W)`` vessel label.

    Returns:
        transform name (see ``DIHEDRAL``) -> correlation; transforms that change the shape of a
        non-square label are left out.
    """
    img = image.astype(np.float32).ravel()
    img = (img - img.mean()) / (img.std() + 1e-8)
    lab = label.astype(np.float32)
    scores = {}
    for i, name in enumerate(DIHEDRAL):
        t = dihedral(lab, i)
        if t.shape != label.shape:
            continue
        v = t.ravel()
        sd = v.std()
        scores[name] = float(np.dot(img, v - v.mean()) / (img.size * sd)) if sd > 0 else 0.0
    return scores


def read_label(path: Path, shape: tuple[int, int] | None) -> tuple[np.ndarray | None, list[str]]:
    """A binary label: {0, 255} (OCTA-500's convention) or {0, 1} (copies re-encoded elsewhere).

    Returns:
        ``(mask, problems)``: bool ``(H, W)`` or None, and what is wrong, each naming ``path``:
        unreadable, colour, another size than ``shape``, values that are not binary.
    """
    try:
        raw = read_image(path)
    except DatasetError as exc:
        return None, [str(exc)]
    if raw.ndim == 3:
        return None, [f"{path}: an RGB label with unequal channels; a label is a grey mask of 0 (background) and 255 "
                      "(the task), one task per folder: save it as a grey PNG"]
    if shape is not None and raw.shape != tuple(shape):
        return None, [f"{path}: label size {raw.shape} differs from the image's {tuple(shape)}"]
    values = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    if set(values.tolist()) <= {0, 1}:
        return raw > 0, []  # a {0, 1} re-encoding circulates; read it as such
    if set(values.tolist()) <= {0, 255}:
        return raw > 127, []
    shown = ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
    lossy = " (JPEG is lossy: save labels as PNG or BMP)" if path.suffix.lower() in (".jpg", ".jpeg") else ""
    return None, [f"{path}: label values {{{shown}}} outside {{0, 255}}; expected a binary mask{lossy}"]


def label_checks(
    labels: Mapping[str, np.ndarray],
    projections: Mapping[str, np.ndarray],
    fov_mm: float | None,
    path_of: Callable[[str], Path],
) -> list[str]:
    """What is implausible about a subject's labels: their foreground share, the FAZ's shape and place,
    and each vessel label's orientation against the projections.

    The FAZ is judged on the inner retina (ILM_OPL), where it is darkest, else FULL, else the first
    projection read; vessel orientation on FULL, else ILM_OPL, else the first (``orientation_scores``).

    Args:
        labels: task -> bool ``(H, W)``.
        projections: name -> uint8 ``(H, W)``, what was read of the subject.
        fov_mm: the image's width in mm (None: unknown).
        path_of: the file of a task's label or of a projection, for the messages.
    """
    def first(*preferred: str) -> str | None:
        return next((p for p in preferred if p in projections), next(iter(projections), None))

    problems = []
    faz_layer = first("ILM_OPL", "FULL")
    for task, label in labels.items():
        shown = projections.get(faz_layer) if faz_layer is not None else None
        problems += [f"{path_of(task)}: {p}" for p in label_problems(task, fov_mm, label, shown, faz_layer or "")]
    layer = first("FULL", "ILM_OPL")
    if layer is None:
        return problems
    for task in VESSEL_TASKS:
        if task in labels and labels[task].any():
            scores = orientation_scores(projections[layer], labels[task])
            # vessels are bright in OCTA: a capillary label on the dark pixels is inverted (the other tasks'
            # inverted labels cover far more than their share and are refused for it; their thin labels on
            # small images can correlate slightly negatively and prove nothing)
            if task == "Capillary" and scores["identity"] <= -0.15:
                problems.append(f"{path_of(task)}: the {task} label lies on the dark pixels of {path_of(layer)} "
                                f"(r={scores['identity']:.2f}); vessels are bright in OCTA: is it inverted (foreground "
                                "and background swapped)?")
                continue
            best = max(scores, key=scores.get)
            # a clear winner only: a rotated 3M label scores about 0.5 after the right turn and 0 as stored,
            # while labels too thin to see in a small image reach 0.15 after some turn by chance
            if best != "identity" and scores[best] >= 0.25 and scores[best] - scores["identity"] >= 0.2:
                problems.append(
                    f"{path_of(task)}: label orientation disagrees with {path_of(layer)}: the label matches the "
                    f"image best after '{best}' (r={scores[best]:.2f}) rather than as stored (r={scores['identity']:.2f}); "
                    "some copies of the 3 mm data are rotated by 90 degrees: re-orient the labels or the projections"
                )
    if all(t in labels and labels[t].any() for t in ("Artery", "Vein")):
        problems += swapped_av(labels, projections.get(faz_layer) if faz_layer else None, path_of, fov_mm)
    return problems


# A sign that artery and vein labels were swapped: only arteries have a capillary-free zone beside them
# (20-40 µm), so the inner retina is darker beside an artery than beside a vein (beside the synthetic
# arteries 0.74-0.88 times as bright). Read only where pixels resolve that zone (at most 15 µm, the width
# in mm known), with a margin correct labels stay inside. (Widths were tried too: arteries are about
# 0.7 times as wide as veins, but on small or coarse labels the ratio is noise.)
SWAP_RING_RATIO = 1.1
RING_UM = 30.0


def swapped_av(labels: Mapping[str, np.ndarray], projection: np.ndarray | None, path_of: Callable[[str], Path],
               fov_mm: float | None = None) -> list[str]:
    """A problem if the artery and vein labels look swapped: the inner retina clearly brighter beside
    the arteries than beside the veins (see ``SWAP_RING_RATIO``)."""
    from scipy import ndimage

    artery, vein = labels["Artery"], labels["Vein"]
    pixel_um = fov_mm * 1000.0 / artery.shape[1] if fov_mm else None
    if projection is None or projection.shape != artery.shape or pixel_um is None or pixel_um > 15:
        return []
    near = ndimage.binary_dilation(artery | vein, iterations=1)
    steps = max(2, round(RING_UM / pixel_um))
    beside = [ndimage.binary_dilation(lab, iterations=steps) & ~near for lab in (artery, vein)]
    if any(b.sum() < 20 for b in beside):
        return []
    ring = float(projection[beside[0]].mean()) / max(float(projection[beside[1]].mean()), 1e-6)
    if ring <= SWAP_RING_RATIO:
        return []
    return [f"{path_of('Artery')} and {path_of('Vein')}: the two labels look swapped (the inner retina is {ring:.2f} times "
            "as bright beside the arteries as beside the veins; arteries have the darker, capillary-free zone beside "
            "them): swap the two folders if so"]


def read_or_raise(
    read: Callable[[Any, tuple[str, ...], bool], tuple[Any, list[str]]],
    sample_id: Any,
    tasks: Sequence[str],
    known: Sequence[str],
    check_orientation: bool,
    what: str,
) -> Any:
    """What an index's ``load`` does with its ``read``: the sample, or a ``DatasetError`` listing every
    problem (``what`` names the subject in the message); tasks outside ``known`` are refused first."""
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise DatasetError(f"unknown task(s) {unknown}; expected some of {tuple(known)}")
    sample, problems = read(sample_id, tuple(tasks), check_orientation)
    if sample is None:
        raise DatasetError(f"{what}: " + "; ".join(problems), problems)
    return sample
