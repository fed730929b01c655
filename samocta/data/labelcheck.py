"""Is a label what its task's label can be? Plausibility checks that catch inverted, empty, rotated
or swapped labels before they train or score anything.

Ranges are the foreground share of a label in an en-face image of each field of view. The public
OCTA-500 samples give RV 0.077-0.083, capillaries 0.475, arteries 0.046, veins 0.036 and a FAZ of
0.23-0.43 mm² (3M: 2.5-4.7 % of the 9 mm² field; 6M: 0.6-1.2 % of 36 mm²); the bounds below are
widened generously for disease (an enlarged FAZ, vessel drop-out) and other devices, so that they
only refuse what cannot be a label of the task: an inverted RV label covers about 92 %.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from samocta.core.connectivity import EIGHT

# the foreground share a label of each vessel task can cover, whatever the field of view
VESSEL_SHARE = {"RV": (0.02, 0.35), "Capillary": (0.10, 0.85), "Artery": (0.005, 0.25), "Vein": (0.005, 0.25)}
# a FAZ of 0.018-4.32 mm², covering at most a quarter of the image (3M: 0.2-25 %, 6M: 0.05-12 %)
FAZ_AREA_MM2 = (0.018, 4.32)
FAZ_MAX_SHARE = 0.25


def share_range(task: str, fov_mm: float | None) -> tuple[float, float]:
    """The foreground share a ``task`` label can cover in an image ``fov_mm`` wide (None: unknown,
    the widest FAZ range of 2-20 mm fields)."""
    if task != "FAZ":
        return VESSEL_SHARE[task]
    if fov_mm is None:
        return FAZ_AREA_MM2[0] / 20.0**2, FAZ_MAX_SHARE
    area = fov_mm**2
    return FAZ_AREA_MM2[0] / area, min(FAZ_MAX_SHARE, FAZ_AREA_MM2[1] / area)


# the eight rotations and flips of a square image, by name; ``dihedral(a, i)`` applies the i-th
DIHEDRAL = ("identity", "rot90", "rot180", "rot270", "flip", "rot90+flip", "rot180+flip", "rot270+flip")


def dihedral(array: np.ndarray, i: int) -> np.ndarray:
    """The ``i``-th transform of ``DIHEDRAL``: a rotation by ``90 * (i % 4)`` degrees, then a flip if ``i >= 4``."""
    t = np.rot90(array, i % 4)
    return t[:, ::-1] if i >= 4 else t


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def faz_problems(label: np.ndarray, projection: np.ndarray | None, layer: str = "ILM_OPL") -> list[str]:
    """What is wrong with a FAZ label: not one central region, or not on the dark centre of a projection.

    The inner-retina projection (ILM_OPL) is the one to compare with: there the FAZ is darkest (a
    third of the capillary bed around it in OCTA-500), while in FULL it is faint (about 0.7 of it).

    Args:
        label: bool ``(H, W)``, not empty.
        projection: the projection ``(H, W)`` named by ``layer`` (None: the darkness check is skipped).
        layer: its name, for the message.
    """
    problems = []
    components, n = ndimage.label(label, EIGHT)
    sizes = np.bincount(components.ravel())[1:]
    main = components == int(np.argmax(sizes)) + 1
    if sizes.max() < 0.9 * label.sum():
        problems.append(f"the FAZ label is {n} separate regions (the largest holds {sizes.max() / label.sum():.0%}); "
                        "expected one")
    h, w = label.shape
    r, c = np.argwhere(main).mean(axis=0)
    if abs(r - (h - 1) / 2) > 0.3 * h or abs(c - (w - 1) / 2) > 0.3 * w:
        problems.append(f"the FAZ label is centred at row {r:.0f}, column {c:.0f}, far from the image centre")
    if projection is not None and label.shape == projection.shape and h == w:
        image_mean = float(projection.mean()) + 1e-6
        # the FAZ is the dark, vessel-free centre: as stored, the label should sit on the darkest place
        contrast = [1 - float(projection[dihedral(label, i)].mean()) / image_mean for i in range(len(DIHEDRAL))]
        # only transforms that move the label off itself can say it is mis-oriented: a round, centred
        # FAZ is its own rotation, and which copy of it is a shade darker is noise (small or JPEG images)
        moved = [i for i in range(1, len(DIHEDRAL)) if _iou(dihedral(label, i), label) < 0.8]
        best = max(moved, key=lambda i: contrast[i], default=0)
        if best != 0 and contrast[best] >= 0.3 and contrast[best] - contrast[0] >= 0.05:
            problems.append(
                f"the FAZ label lies on the dark centre of {layer} only after '{DIHEDRAL[best]}' (contrast "
                f"{contrast[best]:.2f} against {contrast[0]:.2f} as stored); re-orient the label"
            )
    return problems


def label_problems(
    task: str, fov_mm: float | None, label: np.ndarray, projection: np.ndarray | None = None, layer: str = "ILM_OPL"
) -> list[str]:
    """Plausibility problems of one task label (empty, foreground share out of range, FAZ shape and place).

    ``fov_mm`` is the image's width in mm (None: unknown, the widest FAZ range applies).
    ``projection`` (named ``layer``) is what a FAZ label must lie dark on; see ``faz_problems``.

    Returns:
        messages without the path (the caller names the file).
    """
    if not label.any():
        return [f"the {task} label is empty"]
    share = float(label.mean())
    lo, hi = share_range(task, fov_mm)
    if not lo <= share <= hi:
        hint = " (inverted? foreground and background swapped)" if share > hi and 1 - share <= hi else ""
        field = f"{fov_mm:g} mm " if fov_mm else ""
        return [f"the {task} label covers {share:.1%} of the image, outside the {lo:.1%}-{hi:.0%} a {field}{task} "
                f"label can cover{hint}"]
    return faz_problems(label, projection, layer) if task == "FAZ" else []
