"""Clinical measurements of a mask in physical units: the FAZ's size and shape, the vessels' density and width.

Pixel size comes from the field of view: OCTA-500's 3M images span 3 mm over 304 px (9.87 µm per
pixel), 6M images 6 mm over 400 px (15 µm); any other scan from its width in mm (a folder
dataset's ``fov_mm``) over its width in pixels (``samocta.data.pixel_size_um``). Without a width in
mm nothing is measured in mm: ``measure`` refuses, saying how to give it.

FAZ (Krawitz et al., "Acircularity index and axis ratio of the foveal avascular zone in diabetic
eyes and healthy controls measured by optical coherence tomography angiography", Vision Research
139, 2017): area (mm²) and perimeter (mm) of the largest FAZ region, and circularity
``4 pi A / P^2`` (1 for a disk, lower for an irregular outline; the inverse of the acircularity
index). The perimeter is the Crofton estimate (``skimage.measure.perimeter_crofton``, 4
directions): unbiased for outlines of every orientation, as a FAZ's is (a digital disk of radius
20-120 px reads within 1 % of 2 pi r), where counting boundary steps reads 2-5 % long; a
straight edge along the pixel grid reads about 5 % short.

Vessels (Chu et al., "Quantitative assessment of the retinal microvasculature using optical
coherence tomography angiography", Journal of Biomedical Optics 21(6), 066008, 2016): vessel area
density (the share of the image that is vessel, %), vessel skeleton density as length per area
(skeleton length in mm per mm² of image; the skeleton from ``skimage.morphology.skeletonize``,
its length measured step by step, see ``skeleton_length``), and the mean vessel width as the
vessel diameter index (vessel area / skeleton length, in µm). Thinning shortens each vessel end by
about half its width, so the width of short, wide segments reads a little high (a 6 px bar of
200 px: +3 %).
"""

from __future__ import annotations

import math

import numpy as np

from samocta.core.errors import InputError
from samocta.core.vocabulary import TASKS
from samocta.data.octa500 import pixel_size_um

# what to tell a user whose scans have no known width in mm
FOV_MM_HINT = ("measurements in mm need the scans' width: pass --fov-mm (the width of the scan in mm, e.g. 3 for a "
               "3 x 3 mm scan) or write {\"fov_mm\": 3.0} into a dataset.json beside the images")

FAZ_MEASURES = ("faz_area_mm2", "faz_perimeter_mm", "faz_circularity")
VESSEL_MEASURES = ("area_density_pct", "skeleton_density_mm_per_mm2", "mean_width_um")
# the same in pixels, for scans whose width in mm is unknown (circularity and density have no unit)
PIXEL_MEASURES = {"faz_area_mm2": "faz_area_px", "faz_perimeter_mm": "faz_perimeter_px",
                  "skeleton_density_mm_per_mm2": "skeleton_density_per_px", "mean_width_um": "mean_width_px"}


# The columns of predict's measurements.csv, each said once: ``predict --help`` and the README print
# this table (a test checks both against it and against a written file). <region> is centre, inner,
# outer (rings whole) or inner_/outer_ + superior, inferior and nasal, temporal (the eye known) or
# right, left (unknown); a region is measured when the scan covers half of it or more.
COLUMNS = {
    "id": "the scan (OCTA-500 number or file stem)",
    "task": "what was segmented (RV, FAZ, Capillary, Artery, Vein)",
    "size": "the scan's H x W in pixels",
    "pixel_um": "its pixel size in µm (empty: its width in mm unknown)",
    "channels": "the projections in SAM's three channels",
    "shown": "how the scan was shown to the model (as it is, resampled, in views)",
    "prompts": "none, auto, or the clicked points used",
    "faz_area_mm2": "FAZ area of its largest region (px² as faz_area_px without a width in mm)",
    "faz_perimeter_mm": "FAZ perimeter, Crofton estimate (faz_perimeter_px)",
    "faz_circularity": "4 pi area / perimeter², 1 for a disk",
    "faz_acircularity": "perimeter over that of the circle of equal area, 1 for a disk (Krawitz 2017)",
    "faz_axis_ratio": "major over minor axis of the FAZ's moment ellipse, 1 for a disk",
    "area_density_pct": "vessel area density over the whole scan, %",
    "skeleton_density_mm_per_mm2": "vessel centre-line length per area (skeleton_density_per_px)",
    "mean_width_um": "vessel area over centre-line length (mean_width_px)",
    "grid_centre": "what the ETDRS grid is centred on: the FAZ centroid, or the image centre",
    "grid_x_px / grid_y_px": "the grid's centre in the scan, (x, y) in pixels",
    "eye": "OD or OS (--eye, or OD/OS in the file name), else unknown (sectors named right and left)",
    "density_<region>_pct": "vessel area density inside an ETDRS region, %",
    "skeleton_density_<region>_mm_per_mm2": "centre-line length per area inside an ETDRS region",
    "coverage_<region>": "the share of the region the scan covers",
    "fd300_pct": "vessel area density in the 300 µm band around the FAZ (needs a FAZ: --faz-adapter)",
    "fractal_dimension": "box-counting dimension of the vessel mask",
    "skeleton_fractal_dimension": "box-counting dimension of its centre line",
    "<measure>_low / _high": "the headline measure's lowest and highest value over the quality variations",
    "predicted_iou": "SAM's own predicted IoU of the mask",
    "agreement": "mean Dice of the mask with its mirrored and other-prompt variations",
    "confidence": "soft Dice of the mask's probabilities with the mask itself (1: every pixel certain)",
    "quality": "the review signal (the agreement)",
    "review_reason": "why the scan needs a look whatever its quality: no signal in the scan, no structure found, a "
                     "mask covering a share of the scan unlike the adapter's training labels, or a vessel width (FAZ "
                     "area) at the declared width in mm that contradicts them (empty: none)",
    "review": "True for every scan with a review_reason, and the lowest quality of the rest up to the share "
              "--review-rate",
}


def columns_text(width: int = 100) -> str:
    """``COLUMNS`` as indented lines for ``--help`` and the README."""
    import textwrap

    regions = ("<region>: centre (1 mm), inner (1-3 mm ring), outer (3-6 mm ring), or a ring's sector, inner_/outer_ + "
               "superior, inferior, nasal, temporal (right, left when the eye is unknown); a region is measured when the "
               "scan covers half of it or more (on a 3 x 3 mm scan: centre and inner)")
    lines = [f"{name}: {what}" for name, what in COLUMNS.items()] + [regions]
    return "\n".join(textwrap.fill(line, width, subsequent_indent="    ") for line in lines)


def _mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"a mask is 2-D (H, W), got shape {mask.shape}")
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise InputError("the mask has NaN or infinite values; pass a bool mask")
    return mask.astype(bool)


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a non-empty bool mask (the FAZ proper, without specks)."""
    from scipy import ndimage

    from samocta.core.connectivity import EIGHT

    labels, _ = ndimage.label(mask, EIGHT)
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def faz_measures(mask: np.ndarray, pixel_um: float) -> dict[str, float]:
    """FAZ area (mm²), perimeter (mm) and circularity ``4 pi A / P^2`` of the largest region.

    Args:
        mask: bool ``(H, W)`` FAZ mask.
        pixel_um: pixel size in µm.

    Returns:
        the three ``FAZ_MEASURES``; NaN for an empty mask.
    """
    from skimage.measure import perimeter_crofton

    mask = _mask(mask)
    if not mask.any():
        return dict.fromkeys(FAZ_MEASURES, float("nan"))
    largest = largest_region(mask)
    mm = pixel_um / 1000.0
    area_px = float(largest.sum())
    perim_px = float(perimeter_crofton(np.pad(largest, 1), directions=4))
    return {
        "faz_area_mm2": area_px * mm**2,
        "faz_perimeter_mm": perim_px * mm,
        "faz_circularity": 4 * math.pi * area_px / perim_px**2 if perim_px else float("nan"),
    }


def skeleton_length(skeleton: np.ndarray) -> float:
    """Length of a one-pixel-wide skeleton in pixels: steps between 8-neighbours, diagonal ones
    counted as ``sqrt(2)``; a diagonal step is not counted where the path turns through an
    orthogonal neighbour instead (which would count the corner twice).

    A straight run of n pixels is ``n - 1`` long, horizontal or diagonal (counting pixels instead
    would shorten diagonal vessels by 29 %).
    """
    s = np.asarray(skeleton, bool)
    ortho = int((s[:, :-1] & s[:, 1:]).sum() + (s[:-1, :] & s[1:, :]).sum())
    down = s[:-1, :-1] & s[1:, 1:] & ~s[:-1, 1:] & ~s[1:, :-1]
    up = s[:-1, 1:] & s[1:, :-1] & ~s[:-1, :-1] & ~s[1:, 1:]
    return ortho + math.sqrt(2) * int(down.sum() + up.sum())


def vessel_measures(mask: np.ndarray, pixel_um: float) -> dict[str, float]:
    """Vessel area density (%), skeleton length density (mm/mm²) and mean width (µm).

    Args:
        mask: bool ``(H, W)`` vessel mask (RV, capillaries, arteries or veins).
        pixel_um: pixel size in µm.

    Returns:
        the three ``VESSEL_MEASURES``; the mean width is NaN for an empty mask.
    """
    from skimage.morphology import skeletonize

    mask = _mask(mask)
    skeleton_px = skeleton_length(skeletonize(mask))
    mm = pixel_um / 1000.0
    image_mm2 = mask.size * mm**2
    return {
        "area_density_pct": 100.0 * float(mask.mean()),
        "skeleton_density_mm_per_mm2": skeleton_px * mm / image_mm2,
        "mean_width_um": float(mask.sum()) / skeleton_px * pixel_um if skeleton_px else float("nan"),
    }


def measure(mask: np.ndarray, task: str, fov: str | float | None) -> dict[str, float]:
    """The measurements clinicians use for one task's mask, in the units of its pixel size.

    Args:
        mask: bool ``(H, W)``.
        task: one of ``TASKS``: "FAZ" gives ``FAZ_MEASURES``, the vessel tasks ``VESSEL_MEASURES``.
        fov: the image's width: "3M" or "6M" (3 mm or 6 mm across the image, whatever its pixel
            count), or a number of mm.

    Raises:
        InputError: ``fov`` is None (the width is unknown; the message says how to give it).
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; expected one of {TASKS}")
    if fov is None:
        raise InputError(FOV_MM_HINT)
    mask = _mask(mask)
    pixel_um = pixel_size_um(fov, mask.shape[1])
    return faz_measures(mask, pixel_um) if task == "FAZ" else vessel_measures(mask, pixel_um)


def measure_pixels(mask: np.ndarray, task: str) -> dict[str, float]:
    """``measure`` in pixel units, for a scan whose width in mm is unknown: FAZ area (px²) and perimeter
    (px), vessel skeleton length per pixel and mean width (px); circularity and area density as in mm.

    Returns:
        ``measure``'s values under the names of ``PIXEL_MEASURES`` (unit-free ones unchanged).
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; expected one of {TASKS}")
    mask = _mask(mask)
    # 1 px = 1 mm makes areas px², lengths px and densities per px; the width (in µm) is then 1000 x px
    values = faz_measures(mask, 1000.0) if task == "FAZ" else vessel_measures(mask, 1000.0)
    if "mean_width_um" in values:
        values["mean_width_um"] /= 1000.0
    return {PIXEL_MEASURES.get(k, k): v for k, v in values.items()}
