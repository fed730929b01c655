"""Regional measurements as OCTA devices report them and clinical papers compare them.

- **The ETDRS grid** (Early Treatment Diabetic Retinopathy Study Research Group, "Grading diabetic
  retinopathy from stereoscopic color fundus photographs - an extension of the modified Airlie House
  classification", Ophthalmology 98(5 Suppl), 1991): circles of 1, 3 and 6 mm diameter centred on
  the fovea; the 1 mm centre, the parafoveal ring (1-3 mm) and the perifoveal ring (3-6 mm), each ring
  cut into four sectors by the diagonals: superior (towards the top of the en-face image), inferior,
  and nasal / temporal, which depend on the eye: in a right eye (OD) seen en face the nasal side
  (towards the optic disc) is on the image's right, in a left eye (OS) on its left. A 3 x 3 mm scan
  holds the centre and the parafoveal ring; the perifoveal ring only on scans of 6 mm and more.
  The grid is centred on the FAZ's centroid when a FAZ mask is at hand, else on the image centre.
- **Density per region** (Chu et al., J. Biomed. Opt. 21(6), 066008, 2016, as in ``samocta.measure``):
  vessel area density (%) and skeleton length density (mm per mm²) inside each region's part of the
  image; a region partly outside the scan is measured over what the scan covers (``coverage``).
- **FD-300** (the AngioVue software's measure, e.g. Lin et al., "Foveal avascular zone and its
  relationship to foveal pit shape and cone density", and Coscas et al., Ophthalmologica 2017): the
  vessel area density (%) in the 300 µm wide band around the FAZ's border.
- **FAZ shape** (Krawitz et al., Vision Research 139, 2017): the acircularity index, the FAZ's
  perimeter over the perimeter of a circle of its area (1 for a disk, larger for an irregular
  outline), and the axis ratio, major over minor axis of the ellipse with the FAZ's second moments
  (1 for a disk).
- **Fractal dimension** (box counting; Zahid et al., "Fractal dimensional analysis of optical
  coherence tomography angiography in eyes with diabetic retinopathy", IOVS 57(11), 2016): the slope
  of log(boxes holding vessel) against log(1 / box side), over box sides of 2 to a quarter of the
  image; of the vessel mask and of its skeleton.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from samocta.core.errors import InputError

Eye = Literal["OD", "OS"]
EYES: tuple[str, ...] = ("OD", "OS")
ETDRS_DIAMETERS_MM = (1.0, 3.0, 6.0)
SECTORS = ("superior", "nasal", "inferior", "temporal")
FD_BAND_UM = 300.0
# a region is measured when the scan covers at least this share of it: on a 3 x 3 mm scan the
# perifoveal ring (3-6 mm) shows only in the corners (9 % of it) and is left out, as devices do
MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class Grid:
    """An ETDRS grid placed on one scan.

    Attributes:
        centre: ``(x, y)`` in pixels (pixel centres at ``i + 0.5``).
        centred_on: "FAZ centroid" or "image centre".
        pixel_um: the scan's pixel size.
        eye: "OD", "OS" or None (sectors then named by image side: "right" and "left").
    """

    centre: tuple[float, float]
    centred_on: str
    pixel_um: float
    eye: str | None

    def side_names(self) -> tuple[str, str]:
        """The names of the image's right and left sectors: (nasal, temporal) for OD, the reverse for OS."""
        if self.eye == "OD":
            return "nasal", "temporal"
        if self.eye == "OS":
            return "temporal", "nasal"
        return "right", "left"

    def regions(self, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Region name -> bool ``(H, W)`` mask: "centre", "inner_<sector>", "outer_<sector>", and the
        rings "inner" and "outer" whole; a region that lies wholly outside the image is left out."""
        h, w = shape
        ys, xs = np.mgrid[0:h, 0:w]
        dx = (xs + 0.5 - self.centre[0]) * self.pixel_um / 1000.0
        dy = (self.centre[1] - (ys + 0.5)) * self.pixel_um / 1000.0  # up is superior
        r = np.hypot(dx, dy)
        angle = np.degrees(np.arctan2(dy, dx)) % 360  # 0: image right, 90: up
        right, left = self.side_names()
        sector = {"superior": (angle >= 45) & (angle < 135), left: (angle >= 135) & (angle < 225),
                  "inferior": (angle >= 225) & (angle < 315), right: (angle >= 315) | (angle < 45)}
        d0, d1, d2 = (d / 2 for d in ETDRS_DIAMETERS_MM)
        rings = {"centre": r < d0, "inner": (r >= d0) & (r < d1), "outer": (r >= d1) & (r < d2)}
        out = {"centre": rings["centre"], "inner": rings["inner"], "outer": rings["outer"]}
        order = ("superior", right, "inferior", left)
        for ring in ("inner", "outer"):
            for name in order:
                out[f"{ring}_{name}"] = rings[ring] & sector[name]
        return {k: v for k, v in out.items() if v.any()}

    def covered(self, shape: tuple[int, int], region: str) -> float:
        """The share of a region's full area (as drawn on an unbounded plane) the image covers."""
        d0, d1, d2 = (d / 2 for d in ETDRS_DIAMETERS_MM)
        full_mm2 = {"centre": math.pi * d0**2, "inner": math.pi * (d1**2 - d0**2), "outer": math.pi * (d2**2 - d1**2)}
        ring = region.split("_")[0]
        area = full_mm2[ring] / (4 if "_" in region else 1)
        inside = float(self.regions(shape).get(region, np.zeros(shape, bool)).sum()) * (self.pixel_um / 1000.0) ** 2
        return min(1.0, inside / area)


def eye_of(name: str) -> str | None:
    """The eye a file stem or id names: a token "OD" or "OS" (``scan_0001_OD``, ``12-os``), else None."""
    import re

    tokens = {t.upper() for t in re.split(r"[^A-Za-z0-9]+", str(name)) if t}
    found = tokens & set(EYES)
    return found.pop() if len(found) == 1 else None


def place_grid(shape: tuple[int, int], pixel_um: float, faz: np.ndarray | None = None, eye: str | None = None) -> Grid:
    """An ETDRS grid on a scan of ``shape``: on the centroid of ``faz``'s largest region if given and
    not empty, else on the image centre.

    Args:
        shape: ``(H, W)``; pixel_um: the pixel size in µm (needed: the grid is in mm).
        faz: bool ``(H, W)`` FAZ mask, or None.
        eye: "OD", "OS" or None.
    """
    if not (pixel_um > 0 and math.isfinite(pixel_um)):
        raise InputError(f"the ETDRS grid is in mm and needs the pixel size; got {pixel_um!r}")
    if eye is not None and eye not in EYES:
        raise InputError(f"the eye (--eye) is OD (right) or OS (left); got {eye!r}")
    h, w = shape
    if faz is not None and np.asarray(faz).any():
        from samocta.measure import largest_region

        ys, xs = np.nonzero(largest_region(np.asarray(faz, bool)))
        return Grid((float(xs.mean()) + 0.5, float(ys.mean()) + 0.5), "FAZ centroid", pixel_um, eye)
    return Grid((w / 2, h / 2), "image centre", pixel_um, eye)


def regional_density(vessels: np.ndarray, grid: Grid) -> dict[str, float]:
    """Vessel area density (%) and skeleton length density (mm/mm²) in every region of ``grid``.

    Returns:
        ``density_<region>_pct`` and ``skeleton_density_<region>_mm_per_mm2`` for each region the
        image covers at least ``MIN_COVERAGE`` of, and ``coverage_<region>`` (the share it covers).
    """
    from skimage.morphology import skeletonize

    from samocta.measure import skeleton_length

    vessels = np.asarray(vessels, bool)
    skeleton = skeletonize(vessels)
    mm = grid.pixel_um / 1000.0
    out: dict[str, float] = {}
    for name, region in grid.regions(vessels.shape).items():
        coverage = grid.covered(vessels.shape, name)
        if coverage < MIN_COVERAGE:
            continue
        area_mm2 = float(region.sum()) * mm**2
        out[f"density_{name}_pct"] = 100.0 * float(vessels[region].mean())
        # the skeleton's length inside the region: its steps between pixels that both lie inside
        out[f"skeleton_density_{name}_mm_per_mm2"] = skeleton_length(skeleton & region) * mm / area_mm2
        out[f"coverage_{name}"] = coverage
    return out


def regional_measures(mask: np.ndarray, task: str, pixel_um: float, faz: np.ndarray | None = None,
                      eye: str | None = None) -> dict[str, object]:
    """Every regional measurement of one task's mask (the columns ``samocta.measure.COLUMNS`` documents).

    Args:
        mask: bool ``(H, W)``, the task's mask; task: one of ``TASKS``.
        pixel_um: the scan's pixel size in µm.
        faz: the scan's FAZ mask, if known (centres the grid, gives the FD-300); for the FAZ task the
            mask itself.
        eye: "OD", "OS" or None.

    Returns:
        ``grid_centre`` (what the grid is centred on), ``eye`` ("OD", "OS" or "unknown: sectors by
        image side"), then for vessels the densities per region, the FD-300 and the fractal
        dimensions; for the FAZ its acircularity and axis ratio.
    """
    mask = np.asarray(mask, bool)
    if task == "FAZ":
        faz = mask
    grid = place_grid(mask.shape, pixel_um, faz, eye)
    out: dict[str, object] = {"grid_centre": grid.centred_on, "grid_x_px": round(grid.centre[0], 2),
                              "grid_y_px": round(grid.centre[1], 2), "eye": eye or "unknown"}
    if task == "FAZ":
        return {**out, **faz_shape(mask, pixel_um)}
    out.update(regional_density(mask, grid))
    out["fd300_pct"] = fd300(mask, faz, pixel_um) if faz is not None else float("nan")
    out.update(fractal_dimensions(mask))
    return out


def fd300(vessels: np.ndarray, faz: np.ndarray, pixel_um: float, band_um: float = FD_BAND_UM) -> float:
    """Vessel area density (%) in the band ``band_um`` wide around the FAZ (outside it), as the
    FD-300 of AngioVue. NaN without a FAZ or when the band leaves the image entirely."""
    from scipy import ndimage

    faz = np.asarray(faz, bool)
    if not faz.any():
        return float("nan")
    distance_um = ndimage.distance_transform_edt(~faz) * pixel_um
    band = (distance_um > 0) & (distance_um <= band_um)
    return 100.0 * float(np.asarray(vessels, bool)[band].mean()) if band.any() else float("nan")


def faz_shape(faz: np.ndarray, pixel_um: float = 1.0) -> dict[str, float]:
    """Acircularity index (perimeter over that of the circle of equal area) and axis ratio (major
    over minor axis of the moment ellipse) of the largest FAZ region; NaN if empty."""
    from skimage.measure import regionprops

    from samocta.measure import faz_measures, largest_region

    faz = np.asarray(faz, bool)
    if not faz.any():
        return {"faz_acircularity": float("nan"), "faz_axis_ratio": float("nan")}
    values = faz_measures(faz, pixel_um)
    props = regionprops(largest_region(faz).astype(np.uint8))[0]
    minor = props.axis_minor_length
    return {"faz_acircularity": values["faz_perimeter_mm"] / (2 * math.sqrt(math.pi * values["faz_area_mm2"])),
            "faz_axis_ratio": props.axis_major_length / minor if minor > 0 else float("nan")}


def box_counting_dimension(mask: np.ndarray, sizes: Sequence[int] | None = None) -> float:
    """The box-counting (Minkowski-Bouligand) dimension of a binary image.

    The image is cut into boxes of side ``s`` for each ``s`` in ``sizes`` (default: powers of 2 from 2
    to a quarter of the shorter side; a partial box at an edge counts like a whole one), the boxes
    holding foreground counted, and the dimension read as the least-squares slope of log(count)
    against log(1 / s). A filled square reads 2, a straight line 1, a Sierpinski carpet
    log 8 / log 3 = 1.893 (over box sides that are powers of 3).

    Returns:
        the dimension; NaN for an empty mask.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        return float("nan")
    if sizes is None:
        limit = min(mask.shape) // 4
        sizes = [2**k for k in range(1, 32) if 2**k <= limit]
    sizes = [int(s) for s in sizes if s >= 1]
    if len(sizes) < 2:
        raise InputError(f"box counting needs two box sides or more; the image {mask.shape} allows {sizes}")
    counts = []
    for s in sizes:
        h, w = -(-mask.shape[0] // s) * s, -(-mask.shape[1] // s) * s
        padded = np.zeros((h, w), bool)
        padded[: mask.shape[0], : mask.shape[1]] = mask
        counts.append(int(padded.reshape(h // s, s, w // s, s).any(axis=(1, 3)).sum()))
    slope = np.polyfit(np.log(1.0 / np.asarray(sizes, float)), np.log(np.asarray(counts, float)), 1)[0]
    return float(slope)


def fractal_dimensions(vessels: np.ndarray) -> dict[str, float]:
    """Box-counting dimension of a vessel mask and of its skeleton."""
    from skimage.morphology import skeletonize

    vessels = np.asarray(vessels, bool)
    return {"fractal_dimension": box_counting_dimension(vessels),
            "skeleton_fractal_dimension": box_counting_dimension(skeletonize(vessels))}
