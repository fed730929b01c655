"""Rasterising synthetic OCTA geometry: FAZ polygon, capillary meshes, vessel pieces, noise fields."""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage
from scipy.spatial import Voronoi
from skimage.draw import polygon as draw_polygon

from samocta.synth.vessels import Forest


def faz_mask(
    shape: tuple[int, int], centre: np.ndarray, area_px: float, rng: np.random.Generator, irregularity: float = 0.20
) -> np.ndarray:
    """An irregular FAZ outline: r(t) = R0 (1 + sum_k a_k cos(k t + phi_k)), k = 2..12.

    The amplitudes fall as ``irregularity / k^0.95`` (times U(0.5, 1.5)), with k = 3..5 doubled:
    the low orders give the lobes and shallow notches that set the solidity, the higher orders
    the ragged border that sets the circularity. At 0.20 the circularity (4 pi A / P^2, Crofton
    perimeter) is about 0.72 and the solidity about 0.87, as in healthy eyes; about 0.28 gives the
    more ragged FAZ of diabetic retinopathy (circularity about 0.6).

    Returns:
        bool ``(H, W)`` with one simply connected component of about ``area_px`` pixels.
    """
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    ks = np.arange(2, 13)
    amps = irregularity / ks**0.95 * rng.uniform(0.5, 1.5, ks.size) * np.where((ks >= 3) & (ks <= 5), 2.0, 1.0)
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    r = 1.0 + (amps[:, None] * np.cos(ks[:, None] * theta + phases[:, None])).sum(0)
    r = np.maximum(r, 0.35)  # star-shaped about the centre, so the polygon is simple
    r *= np.sqrt(area_px / (0.5 * np.sum(r**2) * (2 * np.pi / theta.size)))  # polygon area -> area_px
    rows = centre[0] + r * np.sin(theta)
    cols = centre[1] + r * np.cos(theta)
    mask = np.zeros(shape, bool)
    rr, cc = draw_polygon(rows, cols, shape)
    mask[rr, cc] = True
    return mask


def _sample_segments(p0: np.ndarray, p1: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along each segment; returns the points ``(M, 2)`` and their segment index."""
    length = np.hypot(*(p1 - p0).T)
    n = np.maximum(np.ceil(length / spacing).astype(int), 1) + 1
    idx = np.repeat(np.arange(len(p0)), n)
    start = np.cumsum(n) - n
    t = (np.arange(idx.size) - start[idx]) / np.maximum(n[idx] - 1, 1)
    return p0[idx] + t[:, None] * (p1 - p0)[idx], idx


def voronoi_mesh(
    shape: tuple[int, int],
    density: float,
    rng: np.random.Generator,
    thick_fraction: float = 0.6,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """A capillary-like mesh: Voronoi ridges of Poisson seeds, 1 or 2 px wide.

    Args:
        shape: ``(H, W)``.
        density: seeds per px^2 (0.025 at 3M gives the real capillary skeleton density).
        rng: the generator.
        thick_fraction: share of ridges drawn 2 px wide.
        keep: optional float ``(H, W)`` in [0, 1]: the share of seeds kept at each place (seeds
            outside the image use the nearest pixel), so the mesh can open up where it is below 1.

    Returns:
        bool ``(H, W)``.
    """
    h, w = shape
    margin = 6.0
    n = rng.poisson(density * (h + 2 * margin) * (w + 2 * margin))
    seeds = np.column_stack([rng.uniform(-margin, h + margin, n), rng.uniform(-margin, w + margin, n)])
    if keep is not None:
        at = np.clip(np.floor(seeds).astype(int), 0, [h - 1, w - 1])
        seeds = seeds[rng.random(n) < keep[at[:, 0], at[:, 1]]]
    vor = Voronoi(seeds)
    ridges = np.array([rv for rv in vor.ridge_vertices if rv[0] >= 0 and rv[1] >= 0], int)
    verts = vor.vertices + rng.uniform(-0.5, 0.5, vor.vertices.shape)
    p0, p1 = verts[ridges[:, 0]], verts[ridges[:, 1]]
    inside = lambda p: (p[:, 0] > -2 * margin) & (p[:, 0] < h + 2 * margin) & (p[:, 1] > -2 * margin) & (p[:, 1] < w + 2 * margin)
    within = inside(p0) & inside(p1)
    p0, p1 = p0[within], p1[within]
    pts, idx = _sample_segments(p0, p1, 0.5)
    thick = rng.random(len(p0)) < thick_fraction
    d = p1 - p0
    horizontal = np.abs(d[:, 1]) >= np.abs(d[:, 0])  # thicken across the ridge
    pix = np.floor(pts).astype(int)
    extra = pix[thick[idx]] + np.where(horizontal[idx][thick[idx], None], [1, 0], [0, 1])
    pix = np.concatenate([pix, extra])
    ok = (pix[:, 0] >= 0) & (pix[:, 0] < h) & (pix[:, 1] >= 0) & (pix[:, 1] < w)
    mesh = np.zeros(shape, bool)
    mesh[pix[ok, 0], pix[ok, 1]] = True
    return mesh


_OFFSETS: dict[float, np.ndarray] = {}


def _disk_offsets(radius: float) -> np.ndarray:
    if radius not in _OFFSETS:
        r = int(np.ceil(radius))
        rr, cc = np.mgrid[-r : r + 1, -r : r + 1]
        keep = (rr + 0.0) ** 2 + (cc + 0.0) ** 2 <= radius**2
        _OFFSETS[radius] = np.stack([rr[keep], cc[keep]], 1)
    return _OFFSETS[radius]


def stamp_segments(
    shape: tuple[int, int], p0: np.ndarray, p1: np.ndarray, radius: np.ndarray, value: np.ndarray, ss: int
) -> np.ndarray:
    """Area-antialiased rendering of capsules (segments with a radius).

    Each capsule is drawn at ``ss`` times the resolution with its ``value`` (the maximum wins where
    capsules overlap) and area-averaged back, so a pixel half covered by a vessel of value 1 gets 0.5.

    Args:
        shape: output ``(H, W)``.
        p0, p1: ``(N, 2)`` end points ``(row, col)`` in output pixels (pixel ``i`` spans ``[i, i+1)``).
        radius: ``(N,)`` in output pixels.
        value: ``(N,)`` values in [0, 1].
        ss: supersampling factor.

    Returns:
        float32 ``(H, W)`` in [0, 1].
    """
    h, w = shape
    big = np.zeros(h * ss * w * ss, np.float32)
    if len(p0):
        pts, idx = _sample_segments(p0 * ss, p1 * ss, 0.7)
        rad = np.round(np.maximum(radius[idx] * ss, 0.5) * 2) / 2  # bins of half a sub-pixel
        val = value[idx].astype(np.float32)
        order = np.argsort(val, kind="stable")  # ascending: the largest value is written last and wins
        pts, rad, val = pts[order], rad[order], val[order]
        centres = np.floor(pts).astype(np.int64)
        for r in np.unique(rad):
            sel = rad == r
            off = _disk_offsets(float(r))
            cc = centres[sel, None, :] + off[None]
            ok = (cc[..., 0] >= 0) & (cc[..., 0] < h * ss) & (cc[..., 1] >= 0) & (cc[..., 1] < w * ss)
            flat = (cc[..., 0] * (w * ss) + cc[..., 1])[ok]
            v = np.broadcast_to(val[sel, None], ok.shape)[ok]
            np.maximum.at(big, flat, v)
    return big.reshape(h, ss, w, ss).mean(axis=(1, 3))


@functools.lru_cache(maxsize=16)
def _upsampling_matrix(n: int, grid: int) -> np.ndarray:
    """``(n, grid)``: cubic-spline upsampling of a length-``grid`` signal to ``n`` samples.

    Spline zooming is linear and separable, so zooming each unit vector once gives a matrix that
    upsamples a whole lattice with two small products (``A @ coarse @ A.T``) instead of a 2-D zoom.
    """
    eye = np.eye(grid)
    columns = [ndimage.zoom(e, n / grid, order=3, mode="nearest", grid_mode=True)[:n] for e in eye]
    return np.stack(columns, 1)


def smooth_field(shape: tuple[int, int], grid: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field: a ``grid x grid`` uniform lattice in [low, high] upsampled cubically."""
    coarse = rng.uniform(low, high, (grid, grid))
    field = _upsampling_matrix(shape[0], grid) @ coarse @ _upsampling_matrix(shape[1], grid).T
    return np.clip(field, min(low, high), max(low, high)).astype(np.float32)


def correlated_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise blurred with ``sigma`` px (lag-1 autocorrelation about 0.55 at 0.7)."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return n / (n.std() + 1e-8)


def forest_arrays(forest: Forest, select: np.ndarray, value: np.ndarray | float, shape: tuple[int, int], ss: int) -> np.ndarray:
    """``stamp_segments`` of the selected forest pieces."""
    value = np.broadcast_to(np.asarray(value, np.float32), forest.radius.shape)
    return stamp_segments(shape, forest.p0[select], forest.p1[select], forest.radius[select], value[select], ss)
