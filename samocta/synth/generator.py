"""``make_sample``: one synthetic OCTA-500 subject, projections and labels from the same geometry.

Design and calibration targets: ``shared/reference/synthetic-octa.md`` in the project. Ideas (not
code) from Menten et al., MICCAI 2022 and Kreitner et al., IEEE TMI 2024: the image holds more, and
smaller, vessels than the label, and its noise varies across the image.

The macula is drawn as it looks (measured against OCTA-500 and published normative data in
``samocta.synth.stats.REAL_ANATOMY``): an irregular FAZ (healthy, or for a share of subjects the
enlarged, ragged FAZ of diabetic retinopathy), dark in the inner retina and faint in FULL; large
vessels that enter from the edges, taper toward the fovea and end short of the capillary ring that
closes around the FAZ; a capillary mesh that thins toward it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from samocta.core.connectivity import EIGHT
from samocta.core.vocabulary import FOVS
from samocta.data.octa500 import FOV_MM, FOV_SIZE, Sample, pixel_size_um
from samocta.synth.render import (
    correlated_noise,
    faz_mask,
    forest_arrays,
    smooth_field,
    voronoi_mesh,
)
from samocta.synth.vessels import ARTERY, VEIN, GrowthParams, grow_forest


@dataclass(frozen=True)
class SynthConfig:
    """Every tunable of the generator; the defaults are calibrated against real OCTA-500 statistics."""

    faz_area_mm2: tuple[float, float] = (0.18, 0.40)  # healthy eyes
    faz_irregularity: float = 0.20  # circularity about 0.72 (Crofton perimeter), solidity about 0.87 (healthy)
    dr_fraction: float = 0.15  # share of subjects with the enlarged, ragged FAZ of diabetic retinopathy
    dr_faz_area_mm2: tuple[float, float] = (0.40, 0.70)
    dr_faz_irregularity: float = 0.28  # circularity about 0.6
    faz_centre_sd: float = 0.03  # fraction of the field of view
    root_radius_um: tuple[float, float] = (14.0, 23.0)
    # vessels entering from the border of the field (from..to-1), beside the two 6M arcades
    border_roots: tuple[tuple[int, int], tuple[int, int]] = ((16, 23), (12, 18))  # 3M, 6M
    segment_median_um: float = 350.0  # median vessel length between bifurcations
    taper_per_mm: float = 0.05  # vessels thin on their way to the fovea,
    foveal_taper_per_mm: float = 3.0  # and faster in its last few hundred micrometres
    label_radius_um: float = 6.5  # diameter >= 13 um enters the labels
    label_min_radius_px: float = 0.8  # annotators draw vessels at least about 2 px wide
    min_radius_um: float = 5.0
    faz_clearance_um: float = 115.0
    capillary_density: tuple[float, float] = (0.029, 0.028)  # seeds per px^2 at 3M, 6M
    capillary_free_um: float = 20.0  # capillary-free zone around arteries
    perifoveal_keep: float = 0.1  # share of capillary seeds kept at the FAZ border (1 far from it)
    perifoveal_um: float = 200.0  # distance over which the mesh recovers its density
    # how much darker each projection gets toward the fovea (FULL sums a retina that thins there)
    foveal_dimming: tuple[float, float, float] = (0.33, 0.35, 0.75)  # OPL_BM, ILM_OPL, FULL
    foveal_dimming_um: float = 250.0
    deep_density_factor: float = 1.6
    # output gamma per layer (OPL_BM, ILM_OPL, FULL) and FoV (3M, 6M): the last step of matching the
    # real intensity bands; 3M is brighter in its mid-tones, because its darker perifoveal region
    # (the same size in mm) covers more of the image
    output_gamma: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.96, 0.96, 0.8), (1.0, 1.0, 0.85))
    supersample: int = 2
    shear_p: float = 0.1
    whiteout_p: float = 0.1
    floater_p: float = 0.1

    def growth(self) -> GrowthParams:
        """The vessel-forest recipe these settings imply (the forest's own defaults where they say nothing)."""
        return GrowthParams(label_radius_um=self.label_radius_um, min_radius_um=self.min_radius_um,
                            faz_clearance_um=self.faz_clearance_um, segment_median_um=self.segment_median_um,
                            taper_per_mm=self.taper_per_mm, foveal_taper_per_mm=self.foveal_taper_per_mm,
                            drawn_min_radius_px=self.label_min_radius_px)


def _roots(fov: str, n: int, px_um: float, rng: np.random.Generator, cfg: SynthConfig) -> list:
    """Border entry points (position, heading, radius px, class, goal heading)."""
    centre = np.array([n / 2, n / 2])
    disc = 0.0 if rng.random() < 0.5 else np.pi  # optic disc to the right or to the left
    roots = []
    r_lo, r_hi = (r / px_um for r in cfg.root_radius_um)
    if fov == "3M":
        k = int(rng.integers(*cfg.border_roots[0]))
        start_cls = int(rng.integers(2))
        for i, ang in enumerate(np.sort(rng.uniform(0, 2 * np.pi, 1)) + np.arange(k) * 2 * np.pi / k + rng.normal(0, 0.15, k)):
            direction = np.array([np.sin(ang), np.cos(ang)])
            # from the centre to the border along this angle
            t = (n / 2 - 0.5) / np.max(np.abs(direction))
            pos = centre + direction * t
            calibre = 0.75 + 0.25 * np.cos(ang - disc)  # thicker on the disc side
            radius = rng.uniform(r_lo, r_hi) * calibre
            roots.append((pos, ang + np.pi + rng.normal(0, 0.3), radius, (start_cls + i) % 2, np.nan))
    else:
        col = n - 0.5 if disc == 0.0 else 0.5
        inward = np.pi if disc == 0.0 else 0.0
        for sign in (-1, 1):  # arcades above and below the fovea, each an artery beside a vein
            row = n / 2 + sign * n * rng.uniform(0.22, 0.3)
            first = int(rng.integers(2))
            for j, cls in enumerate((first, 1 - first)):
                pos = np.array([row + sign * j * 5.0 * 15.0 / px_um, col])
                goal = inward - sign * 0.12 * (1 if inward == 0.0 else -1)
                roots.append((pos, goal, rng.uniform(r_hi, 1.3 * r_hi) * (1.1 if cls == VEIN else 1.0), cls, goal))
        k = int(rng.integers(*cfg.border_roots[1]))
        for i, ang in enumerate(rng.uniform(0, 2 * np.pi) + np.arange(k) * 2 * np.pi / k + rng.normal(0, 0.2, k)):
            direction = np.array([np.sin(ang), np.cos(ang)])
            pos = centre + direction * (n / 2 - 0.5) / np.max(np.abs(direction))
            roots.append((pos, ang + np.pi + rng.normal(0, 0.3), rng.uniform(r_lo, r_hi), i % 2, np.nan))
    return roots


def make_sample(fov: str = "3M", seed: int = 0, size: int | None = None, config: SynthConfig | None = None) -> Sample:
    """Generate one synthetic OCTA-500 subject.

    Args:
        fov: "3M" (3 x 3 mm, 304 px) or "6M" (6 x 6 mm, 400 px).
        seed: the same ``(fov, seed, size, config)`` gives byte-identical output.
        size: pixel count per side (default the FoV's own); the physical extent stays the same,
            so small sizes make fast test data with the same anatomy at a coarser scale.
        config: generator tunables.

    Returns:
        ``Sample`` with ``image`` uint8 ``(H, W, 3)`` in ``LAYERS`` order (OPL_BM, ILM_OPL, FULL),
        ``labels`` bool ``(H, W)`` for every task, and ``meta`` (pixel size, FAZ centre and area,
        seed, the vessel graph).
    """
    if fov not in FOVS:
        raise ValueError(f"unknown field of view {fov!r}; expected one of {FOVS}")
    cfg = config or SynthConfig()
    n = int(size or FOV_SIZE[fov])
    if n < 32:
        raise ValueError(f"size must be at least 32 px, got {n}")
    px_um = pixel_size_um(fov, n)
    rng = np.random.default_rng([int(seed), FOVS.index(fov), n])
    shape = (n, n)

    # --- geometry ---------------------------------------------------------------------------
    centre = n / 2 + rng.normal(0, cfg.faz_centre_sd * n, 2)
    diabetic = bool(rng.random() < cfg.dr_fraction)
    faz_area_mm2 = rng.uniform(*(cfg.dr_faz_area_mm2 if diabetic else cfg.faz_area_mm2))
    irregularity = cfg.dr_faz_irregularity if diabetic else cfg.faz_irregularity
    faz = faz_mask(shape, centre, faz_area_mm2 * 1e6 / px_um**2, rng, irregularity)
    faz_dist = ndimage.distance_transform_edt(~faz).astype(np.float32)
    forest = grow_forest(shape, _roots(fov, n, px_um, rng, cfg), faz_dist, centre, rng, px_um, cfg.growth())
    ss = cfg.supersample if n >= 200 else 2 * cfg.supersample
    drawn = replace(forest, radius=np.maximum(forest.radius, cfg.label_min_radius_px))
    artery = forest_arrays(drawn, forest.labelled & (forest.cls == ARTERY), 1.0, shape, ss) >= 0.5
    vein = forest_arrays(drawn, forest.labelled & (forest.cls == VEIN), 1.0, shape, ss) >= 0.5
    artery, vein = _close_pinholes(artery & ~faz, vein & ~faz)
    rv = artery | vein

    density = cfg.capillary_density[FOVS.index(fov)] * (FOV_SIZE[fov] / n) ** 2  # same seeds per mm^2
    # the perifoveal capillaries thin out toward the FAZ, whose border they close as one ring
    faz_um = faz_dist * px_um
    keep = 1.0 - (1.0 - cfg.perifoveal_keep) * np.exp(-faz_um / cfg.perifoveal_um)
    mesh = voronoi_mesh(shape, min(density, 0.06), rng, keep=keep)
    free = ndimage.distance_transform_edt(~artery) <= cfg.capillary_free_um / px_um
    ring = ndimage.binary_dilation(faz, structure=EIGHT) & ~faz
    capillary = (((mesh & ~free) | ring | rv) & ~faz)
    deep = voronoi_mesh(shape, min(density * cfg.deep_density_factor, 0.08), rng, thick_fraction=0.3, keep=keep)
    deep &= ndimage.distance_transform_edt(~faz) > 2

    # --- rendering -------------------------------------------------------------------------
    label_r = cfg.label_radius_um / px_um
    amp = np.where(
        forest.labelled,
        0.85 + 0.15 * np.clip((forest.radius - label_r) / (2 * label_r), 0, 1),
        rng.uniform(0.5, 0.7, forest.radius.shape),
    )
    vessels = ndimage.gaussian_filter(forest_arrays(forest, np.ones_like(forest.labelled), amp, shape, ss), 0.6)
    superficial = ndimage.gaussian_filter((capillary & ~rv).astype(np.float32), 0.6) * rng.uniform(0.45, 0.6)
    deep_img = ndimage.gaussian_filter(deep.astype(np.float32), 0.7) * rng.uniform(0.3, 0.45)

    # Fields shared between the layers (same B-scans, same eye motion) make their correlation
    # land near the real 0.70-0.82; each layer adds its own share.
    shared_gain = smooth_field(shape, 9, 0.6, 1.0, rng)
    shared_rows = _unit(ndimage.gaussian_filter1d(rng.normal(0, 1, n), 1.0))
    shared_speckle = _speckle(shape, rng)
    shared_noise = correlated_noise(shape, 0.7, rng)
    # the FAZ is dark but not black: a noise floor well below the surrounding background
    faz_soft = ndimage.gaussian_filter(faz.astype(np.float32), 2.0)
    ilm = np.maximum(np.maximum(vessels, superficial), deep_img) + 0.07 * (1.0 - 0.15 * faz_soft)
    opl = (
        0.85 * ndimage.gaussian_filter(vessels, 0.7)
        + 0.4 * deep_img
        + (1.0 - 0.5 * faz_soft) * (0.3 + 0.1 * correlated_noise(shape, 0.7, rng))
    )
    full = 0.47 * ilm + 0.40 * opl + 0.12 * (1.0 - 0.6 * faz_soft)
    # darkest at the FAZ border, fading with distance; the FAZ keeps its own floor, so what this
    # sets is how faint the FAZ is against the bed around it
    dim = ndimage.gaussian_filter(np.where(faz, 0.0, np.exp(-faz_um / cfg.foveal_dimming_um)).astype(np.float32), 1.5)
    opl, ilm, full = (x * (1.0 - depth * dim) for x, depth in zip((opl, ilm, full), cfg.foveal_dimming))
    channels = {}
    layers = (  # name, signal, row banding sd, speckle weight, additive noise sd
        ("ILM_OPL", ilm, 0.09, 0.5, (0.04, 0.08)),
        ("OPL_BM", opl, 0.09, 0.6, (0.04, 0.08)),
        ("FULL", full, 0.18, 0.55, (0.1, 0.14)),
    )
    for name, base, row_sd, speckle, noise_sd in layers:
        gamma = smooth_field(shape, 9, 0.7, 1.3, rng) ** 0.5  # softened so that the contrast stays in band
        gain = 0.7 * shared_gain + 0.3 * smooth_field(shape, 9, 0.6, 1.0, rng)
        x = gain * np.power(np.clip(base.astype(np.float32), 1e-4, None), gamma)
        g = 0.6 * shared_speckle + 0.4 * _speckle(shape, rng)
        x = x * (1 - speckle + speckle * g)
        x = x + rng.uniform(*noise_sd) * (0.6 * shared_noise + 0.4 * correlated_noise(shape, 0.7, rng))
        rows = 0.7 * shared_rows + 0.3 * _unit(ndimage.gaussian_filter1d(rng.normal(0, 1, n), 1.0))
        channels[name] = x * (1 + row_sd * rows)[:, None]
    _artefacts(channels, shape, rng, cfg)

    image_f = np.stack([channels["OPL_BM"], channels["ILM_OPL"], channels["FULL"]], -1)
    labels = {"RV": rv, "FAZ": faz, "Capillary": capillary, "Artery": artery, "Vein": vein}
    if rng.random() < cfg.shear_p:  # a B-scan displacement: every row below `row0` shifted sideways
        row0, shift = int(rng.integers(n // 4, 3 * n // 4)), int(rng.choice([-3, -2, -1, 1, 2, 3]))
        image_f[row0:] = np.roll(image_f[row0:], shift, axis=1)
        labels = {k: np.concatenate([v[:row0], np.roll(v[row0:], shift, axis=1)]) for k, v in labels.items()}
    # percentile stretch: about 1 % of pixels saturate at 255, almost none sit at 0; FULL, an
    # average over the whole retina, is brighter in its mid-tones (output gamma < 1)
    image = np.empty(image_f.shape, np.uint8)
    for c, out_gamma in enumerate(cfg.output_gamma[FOVS.index(fov)]):
        y = np.clip(image_f[..., c] / np.percentile(image_f[..., c], 99.0), 0, 1) ** out_gamma
        image[..., c] = np.round(y * 255.0).astype(np.uint8)

    meta = {
        "seed": int(seed),
        "fov": fov,
        "px_um": px_um,
        "faz_centre_rc": [float(centre[0]), float(centre[1])],
        "faz_area_mm2": float(labels["FAZ"].sum() * px_um**2 / 1e6),
        "faz_kind": "diabetic retinopathy" if diabetic else "healthy",
        "config": asdict(cfg),
        "forest": forest,
    }
    return Sample(id=-1, fov=fov, image=image, labels=labels, meta=meta, fov_mm=FOV_MM[fov])


def _artefacts(channels: dict[str, np.ndarray], shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> None:
    """B-scan bands, an occasional white-out row and floater, and resolution loss, shared by all layers."""
    n = shape[0]
    row_gain = np.ones(n, np.float32)
    for _ in range(int(rng.integers(0, 4))):
        r0, width = int(rng.integers(0, n)), int(rng.integers(1, 7))
        row_gain[r0 : r0 + width] *= rng.uniform(0.6, 1.4)
    whiteout = int(rng.integers(0, n)) if rng.random() < cfg.whiteout_p else None
    floater = None
    if rng.random() < cfg.floater_p:
        rr, cc = np.mgrid[:n, :n]
        c0, r = rng.uniform(0.2 * n, 0.8 * n, 2), rng.uniform(0.05, 0.12) * n
        floater = 1 - 0.5 * np.exp(-((rr - c0[0]) ** 2 + (cc - c0[1]) ** 2) / (2 * r**2))
    factor = rng.uniform(0.5, 1.0) if rng.random() < 0.3 else 1.0
    for name, x in channels.items():
        x *= row_gain[:, None]
        if floater is not None:
            x *= floater
        if whiteout is not None:
            x[whiteout] = x.max()
        if factor < 1.0:
            small = ndimage.zoom(x, factor, order=1)
            x[:] = ndimage.zoom(small, (n / small.shape[0], n / small.shape[1]), order=1)[:n, :n]


def _fill_small_holes(mask: np.ndarray, max_area: int) -> np.ndarray:
    holes = ndimage.binary_fill_holes(mask) & ~mask
    lab, n = ndimage.label(holes)
    if n == 0:
        return mask
    small = np.bincount(lab.ravel())[lab] <= max_area
    return mask | (holes & small)


def _close_pinholes(artery: np.ndarray, vein: np.ndarray, max_area: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Tidy the rasterised vessel labels.

    Fills the few-pixel holes that rasterising leaves at junctions (a hole enclosed by both classes
    goes to the class holding most of its 4-neighbours, so RV stays exactly Artery | Vein), and
    removes artery pixels that touch a vein away from any crossing.
    """
    artery, vein = _fill_small_holes(artery, max_area), _fill_small_holes(vein, max_area)
    rv = artery | vein
    extra = _fill_small_holes(rv, max_area) & ~rv
    if extra.any():
        cross = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
        to_artery = ndimage.convolve(artery.astype(int), cross, mode="constant") >= ndimage.convolve(
            vein.astype(int), cross, mode="constant"
        )
        artery = artery | (extra & to_artery)
        vein = vein | (extra & ~to_artery)
    # arteries and veins may overlap where they cross, and touch only there: cut other contacts
    # out of the artery, so that every loop of RV passes through a crossing
    crossing_zone = ndimage.binary_dilation(artery & vein, EIGHT, iterations=3)
    contact = artery & ~vein & ndimage.binary_dilation(vein & ~artery, EIGHT) & ~crossing_zone
    return artery & ~contact, vein


def _unit(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-8)


def _speckle(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative speckle with mean 1: Gamma(k), k in [2, 4], slightly blurred."""
    k = rng.uniform(2, 4)
    g = ndimage.gaussian_filter(rng.gamma(k, 1.0 / k, shape).astype(np.float32), 0.5)
    return g / g.mean()
