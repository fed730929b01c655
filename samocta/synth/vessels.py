"""Artery and vein forests grown by persistent random walks with Murray's-law branching.

The output is a list of straight pieces (segments) with a radius and a class, in pixel units of
the working grid. Same-class vessels keep apart (so each label is a loop-free forest); an artery
may cross a vein at a steep angle, which is the only way the large-vessel label gets loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ARTERY, VEIN = 0, 1


@dataclass
class Forest:
    """Vessel centre-line pieces.

    Attributes:
        p0, p1: float ``(N, 2)`` segment end points as ``(row, col)`` in pixels.
        radius: float ``(N,)`` in pixels.
        cls: int ``(N,)``, ``ARTERY`` or ``VEIN``.
        labelled: bool ``(N,)``, thick enough to enter the RV/Artery/Vein labels.
        branch: int ``(N,)`` id of the branch each segment belongs to.
        parent: int ``(B,)`` parent branch of every branch (-1 for a root).
    """

    p0: np.ndarray
    p1: np.ndarray
    radius: np.ndarray
    cls: np.ndarray
    labelled: np.ndarray
    branch: np.ndarray
    parent: np.ndarray


@dataclass
class _Tip:
    pos: np.ndarray  # (row, col)
    heading: float  # radians, 0 = +col
    radius: float  # px
    cls: int
    branch: int
    goal: float  # heading to keep (arcade trunks), or nan: head for the fovea
    to_branch: float  # px of growth left before the next bifurcation
    start: np.ndarray
    may_cross: bool  # whether this branch may cross a vessel of the other class
    steps: int = 0


def _offsets(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    rr, cc = np.mgrid[-r : r + 1, -r : r + 1]
    keep = rr**2 + cc**2 <= radius**2 + 1e-9
    return np.stack([rr[keep], cc[keep]], 1)


class _Occupancy:
    """Per-class rasters of which branch, at which step and with what heading drew each pixel."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.owner = np.full((2, *shape), -1, np.int32)
        self.step = np.zeros((2, *shape), np.int32)
        self.heading = np.zeros((2, *shape), np.float32)
        self._cache: dict[float, np.ndarray] = {}

    def window(self, pos: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
        key = round(radius * 2) / 2
        if key not in self._cache:
            self._cache[key] = _offsets(key)
        pts = np.floor(pos).astype(int) + self._cache[key]
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < self.shape[0]) & (pts[:, 1] >= 0) & (pts[:, 1] < self.shape[1])
        pts = pts[inside]
        return pts[:, 0], pts[:, 1]

    def stamp(self, tip: _Tip) -> None:
        rr, cc = self.window(tip.pos, max(tip.radius, 0.75))
        self.owner[tip.cls, rr, cc] = tip.branch
        self.step[tip.cls, rr, cc] = tip.steps
        self.heading[tip.cls, rr, cc] = tip.heading


@dataclass(frozen=True)
class GrowthParams:
    """The recipe of the vessel forests: what ``grow_forest`` draws, in physical units where it can.

    One object, so that a generator's recipe can be saved (``dataclasses.asdict``) and two recipes
    compared field by field. The defaults are ``grow_forest``'s own; ``SynthConfig.growth()`` gives
    the values the synthetic OCTA generator uses.

    Attributes:
        label_radius_um: vessels at least this thick (radius, µm) enter the labels.
        min_radius_um: tips thinner than this stop.
        faz_clearance_um: large vessels stop this far from the FAZ edge.
        segment_median_um: median length between bifurcations (log-normal, sigma 0.45).
        murray_exponent: kappa in r_p^kappa = r_1^kappa + r_2^kappa (Murray's law).
        step_px: growth step in pixels of the working grid.
        cross_p: share of branches allowed to cross the other class (each crossing adds RV loops).
        taper_per_mm: relative loss of radius per millimetre of growth, so that vessels thin out on
            their way to the fovea and leave the labels (too thin) before the capillary ring.
        foveal_taper_per_mm: extra taper near the FAZ, falling off as ``exp(-d / foveal_taper_um)``
            with the distance ``d`` to the FAZ edge: the arterioles and venules that reach the fovea
            break up into capillaries before its border.
        foveal_taper_um: see ``foveal_taper_per_mm``.
        thin_clearance_um: vessels too thin for the labels (image only) stop this far from the FAZ.
        drawn_min_radius_px: the labels draw no vessel thinner than this (pixels); same-class vessels
            keep clear of each other at that radius, so that thin ones drawn wider do not touch.
        max_steps: hard cap on the number of steps (growth always terminates).
    """

    label_radius_um: float = 7.5
    min_radius_um: float = 5.5
    faz_clearance_um: float = 115.0
    segment_median_um: float = 350.0
    murray_exponent: float = 2.7
    step_px: float = 2.0
    cross_p: float = 0.3
    taper_per_mm: float = 0.3
    foveal_taper_per_mm: float = 2.0
    foveal_taper_um: float = 300.0
    thin_clearance_um: float = 30.0
    drawn_min_radius_px: float = 0.0
    max_steps: int = 20000


def grow_forest(
    shape: tuple[int, int],
    roots: list[tuple[np.ndarray, float, float, int, float]],
    faz_distance: np.ndarray,
    faz_centre: np.ndarray,
    rng: np.random.Generator,
    px_um: float,
    params: GrowthParams = GrowthParams(),
) -> Forest:
    """Grow the forests from border roots.

    Args:
        shape: ``(H, W)`` of the working grid.
        roots: ``(position (row, col), heading rad, radius px, class, goal heading or nan)`` per root.
        faz_distance: float ``(H, W)``, distance in px to the FAZ (0 inside it).
        faz_centre: ``(row, col)`` of the FAZ.
        rng: the generator.
        px_um: micrometres per pixel.
        params: the recipe (``GrowthParams``).

    Returns:
        the ``Forest``.
    """
    p = params
    step_px, cross_p, murray_exponent, max_steps = p.step_px, p.cross_p, p.murray_exponent, p.max_steps
    taper_per_mm, foveal_taper_per_mm, foveal_taper_um = p.taper_per_mm, p.foveal_taper_per_mm, p.foveal_taper_um
    drawn_min_radius_px = p.drawn_min_radius_px
    occ = _Occupancy(shape)
    label_r, min_r = p.label_radius_um / px_um, p.min_radius_um / px_um
    clearance = p.faz_clearance_um / px_um
    thin_clearance = p.thin_clearance_um / px_um
    keep_clear_r = max(label_r, drawn_min_radius_px)  # the thinnest labelled vessel as drawn
    step_mm = step_px * px_um / 1000.0
    seg_median = p.segment_median_um / px_um
    tips: list[_Tip] = []
    parents = np.full(4096, -1, np.int64)
    n_branches = 0
    segs: list[tuple[float, float, float, float, float, int, bool, int]] = []

    def new_branch(parent: int) -> int:
        nonlocal parents, n_branches
        if n_branches == len(parents):
            parents = np.concatenate([parents, np.full(len(parents), -1, np.int64)])
        parents[n_branches] = parent
        n_branches += 1
        return n_branches - 1

    def seg_length() -> float:
        return float(seg_median * np.exp(rng.normal(0.0, 0.45)))

    for pos, heading, radius, cls, goal in roots:
        b = new_branch(-1)
        tips.append(_Tip(np.asarray(pos, float), heading, radius, cls, b, goal, seg_length(), np.asarray(pos, float), rng.random() < cross_p))

    h, w = shape
    fr, fc = float(faz_centre[0]), float(faz_centre[1])

    def faz_dist(r: float, c: float) -> float:
        return float(faz_distance[min(max(int(r), 0), h - 1), min(max(int(c), 0), w - 1)])

    total = 0
    while tips and total < max_steps:
        tip = tips.pop()
        # each branch aims at its own point beside the fovea, so that branches spread like spokes
        # and end facing the FAZ instead of converging on one point or circling it
        aim = rng.normal(0.0, 0.35)
        while total < max_steps:
            total += 1
            labelled = tip.radius >= label_r
            r, c = float(tip.pos[0]), float(tip.pos[1])
            radial = math.atan2(fr - r, fc - c)
            target = tip.goal if not math.isnan(tip.goal) else radial + aim
            delta = math.remainder(target - tip.heading, 2 * math.pi)
            base = tip.heading + 0.05 * delta + rng.normal(0.0, 0.09)
            flip = 1.0 if rng.random() < 0.5 else -1.0
            for turn in (0.0, 0.35, -0.35, 0.7, -0.7):
                heading = base + turn * flip
                new = np.array((r + math.sin(heading) * step_px, c + math.cos(heading) * step_px))
                if not (labelled and _blocked(occ, tip, new, heading, keep_clear_r, parents, drawn_min_radius_px)):
                    break
            else:
                break  # boxed in: the tip stops
            if not (-2 <= new[0] <= h + 1 and -2 <= new[1] <= w + 1):
                segs.append((r, c, new[0], new[1], tip.radius, tip.cls, labelled, tip.branch))
                break
            if faz_dist(new[0], new[1]) < (clearance if labelled else thin_clearance) + tip.radius:
                break
            segs.append((r, c, new[0], new[1], tip.radius, tip.cls, labelled, tip.branch))
            tip.pos, tip.heading, tip.steps = new, heading, tip.steps + 1
            if labelled:
                occ.stamp(tip)
            # radius factor per step: a steady taper, steeper close to the fovea
            d_um = faz_dist(new[0], new[1]) * px_um
            tip.radius *= max(0.0, 1.0 - step_mm * (taper_per_mm + foveal_taper_per_mm * math.exp(-d_um / foveal_taper_um)))
            if tip.radius < min_r:
                break
            tip.to_branch -= step_px
            if tip.to_branch <= 0:
                split = rng.uniform(0.5, 0.9)
                k, rp = murray_exponent, tip.radius
                r1 = rp * (1.0 / (1.0 + split**k)) ** (1.0 / k)
                r2 = split * r1
                # Murray's optimal branching angles for the two daughters
                a1 = math.acos(min(1.0, max(-1.0, (rp**4 + r1**4 - r2**4) / (2 * rp**2 * r1**2))))
                a2 = math.acos(min(1.0, max(-1.0, (rp**4 + r2**4 - r1**4) / (2 * rp**2 * r2**2))))
                side = 1 if rng.random() < 0.5 else -1
                for r_d, ang, keeps_goal in ((r2, -side * a2, False), (r1, side * a1, True)):
                    if r_d < min_r:
                        continue
                    b = new_branch(tip.branch)
                    goal = tip.goal if keeps_goal else math.nan
                    tips.append(_Tip(new.copy(), tip.heading + ang, r_d, tip.cls, b, goal, seg_length(), new.copy(), rng.random() < cross_p))
                break
    if segs:
        arr = np.array(segs, dtype=float)
    else:
        arr = np.zeros((0, 8))
    return Forest(
        p0=arr[:, 0:2],
        p1=arr[:, 2:4],
        radius=arr[:, 4],
        cls=arr[:, 5].astype(int),
        labelled=arr[:, 6].astype(bool),
        branch=arr[:, 7].astype(int),
        parent=parents[:n_branches].copy(),
    )


def _blocked(
    occ: _Occupancy, tip: _Tip, new: np.ndarray, heading: float, label_r: float, parents: np.ndarray, min_r: float = 0.0
) -> bool:
    """Whether a labelled vessel stepping to ``new`` would touch a vessel it must keep clear of."""
    radius = max(tip.radius, min_r)
    reach = radius + 1.5 * label_r + 1.5
    rr, cc = occ.window(new, reach + 2.0)
    # same class: only the own recent path and the junction it grew from may be touched
    own = occ.owner[tip.cls, rr, cc]
    hit = own >= 0
    if hit.any():
        near_junction = np.hypot(rr - tip.start[0], cc - tip.start[1]) < 2.5 * radius + 4
        mine = parents[tip.branch]
        # own branch, parent and siblings meet at the junction this branch started from
        family = (own == tip.branch) | (own == mine) | ((parents[np.maximum(own, 0)] == mine) & (mine >= 0))
        recent = (own == tip.branch) & (occ.step[tip.cls, rr, cc] >= tip.steps - int(2 * radius / 2.0 + 3))
        exempt = recent | (family & near_junction)
        if (hit & ~exempt).any():
            return True
    # other class: some branches may cross it at a steep angle; none may run alongside or touch it
    other = occ.owner[1 - tip.cls, rr, cc] >= 0
    if other.any():
        close = other & (np.hypot(rr - new[0], cc - new[1]) <= radius + 2.5)
        if close.any():
            if not tip.may_cross:
                return True
            cos = np.abs(np.cos(occ.heading[1 - tip.cls, rr[close], cc[close]] - heading))
            if cos.max() > 0.5:
                return True
    return False
