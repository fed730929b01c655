"""Prompt points generated from a label: SAM-OCTA's global and local modes, with artery/vein cross negatives.

Global mode (the paper's section 2.2): every 8-connected component of the task mask gets positive
points inside it and negative points in a band of background just outside it; the target is the
whole mask. Local mode: one component (one vessel) is the target, with two positives inside it
and two negatives next to it; for arteries and veins, further negatives sit on the *other* class's
vessels nearby (the paper's Figure 5).

What this module does differently from the reference code, on purpose (see
``shared/reference/method.md`` section 5 in the project): labels are int32 (no wrap past 255
components); every negative band excludes all foreground and every pixel nearer to another
component; the band is symmetric; every loop is bounded; every random choice comes from the
``numpy.random.Generator`` passed in.

Coordinates are ``(x, y)`` = (column, row) floats with pixel centres at ``i + 0.5``.
Edge cases, one documented behaviour each:

- empty mask: no points, empty target (a "no object" sample); never an error;
- no component with ``min_area`` pixels: no points; global target = the mask (minus the small
  components if ``drop_small``); local target empty;
- a component smaller than the requested count: each of its pixels is used once (fewer points);
- no band pixels (e.g. a full mask): positives only;
- invalid arguments (not a 2-D mask, negative counts, a bad band, an unknown mode): ``PromptError``.
"""

from __future__ import annotations

import typing
import warnings
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import ndimage

from samocta.core.connectivity import EIGHT
from samocta.core.errors import SamOctaError

Mode = Literal["none", "global", "local"]
MODES: tuple[str, ...] = typing.get_args(Mode)
OTHER_VESSEL = {"Artery": "Vein", "Vein": "Artery"}


def label_tasks(task: str, available: Sequence[str]) -> tuple[str, ...]:
    """The labels a subject must provide for ``task``: its own, and the other vessel class when
    present (local-mode cross negatives). Nothing else is read, so a broken label of an unrelated
    task never blocks this one."""
    other = OTHER_VESSEL.get(task)
    return (task,) + ((other,) if other in available else ())


class PromptError(SamOctaError, ValueError):
    """Prompt generation was asked for something impossible (bad mask shape, counts or options)."""


class PromptCapWarning(UserWarning):
    """A global prompt was cut to its cap of points (see ``global_points``'s ``max_points``)."""


# Points per prompt at most (PromptSpec's default cap): far above what an OCTA-500 label needs
# (RV about 30, capillaries about 100 with 1 + 1 per component), far below what strains the decoder.
MAX_POINTS = 256


@dataclass
class Prompt:
    """Prompt points and the mask they ask for.

    Attributes:
        coords: float32 ``(N, 2)``, ``(x, y)`` in original-image pixels, pixel centres at ``i + 0.5``.
        labels: int64 ``(N,)``: 1 positive, 0 negative.
        target: bool ``(H, W)``: what the prompt asks the model to segment.
    """

    coords: np.ndarray
    labels: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_pos(self) -> int:
        return int((self.labels == 1).sum())

    @property
    def n_neg(self) -> int:
        return int((self.labels == 0).sum())


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    """A label as bool ``(H, W)``: bool, or numbers that are all 0 or 1; anything else is refused, not guessed."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise PromptError(f"{name} must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != bool:
        if mask.dtype.kind not in "iuf":
            raise PromptError(f"{name} must be a bool (H, W) mask, got {mask.dtype} values")
        if mask.dtype.kind == "f" and not np.isfinite(mask).all():
            raise PromptError(f"{name} has NaN or infinite values; pass a bool mask (e.g. probabilities > 0.5)")
        odd = np.setdiff1d(np.unique(mask), [0, 1])
        if odd.size:
            raise PromptError(f"{name} must be a bool mask (or 0 and 1), got values such as {odd[0]:g}; threshold it first "
                              "(e.g. probabilities > 0.5)")
    return mask.astype(bool, copy=False)


def _check(mask: np.ndarray, counts: dict[str, int | None], band: tuple[float, float],
           optional: tuple[str, ...] = ("total", "max_points")) -> np.ndarray:
    mask = _binary(mask, "mask")
    for name, value in counts.items():
        if value is None and name in optional:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise PromptError(f"{name} must be a non-negative integer, got {value!r}")
    try:
        d_in, d_out = (float(b) for b in band)
    except (TypeError, ValueError):
        raise PromptError(f"band must be two distances (d_in, d_out) in px, got {band!r}") from None
    if not (np.isfinite(d_in) and np.isfinite(d_out) and 0 <= d_in <= d_out):
        raise PromptError(f"band must be (d_in, d_out) with 0 <= d_in <= d_out, both finite px, got {band}")
    return mask


def _xy(flat: np.ndarray, width: int) -> np.ndarray:
    rows, cols = np.divmod(flat, width)
    return np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float32)


def _sample_groups(flat: np.ndarray, group: np.ndarray, n_groups: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct pixels per group, uniformly without replacement.

    Args:
        flat: ``(P,)`` flat pixel indices.
        group: ``(P,)`` group of each pixel, in ``1..n_groups`` (0 = ignore).
        n_groups: number of groups.
        n: points per group; a group with fewer pixels gives all of them.

    Returns:
        flat indices of the chosen pixels, grouped by group id (group 1 first).
    """
    if n == 0 or flat.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(group, kind="stable")
    flat, group = flat[order], group[order]
    sizes = np.bincount(group, minlength=n_groups + 1)[1:]
    starts = np.concatenate([[0], np.cumsum(sizes)])[:-1] + int((group == 0).sum())
    take = np.minimum(sizes, n)
    ranks = np.full((n_groups, n), -1, np.int64)
    for j in range(n):
        need = np.flatnonzero(take > j)
        ranks[need, j] = (rng.random(need.size) * sizes[need]).astype(np.int64)
        # sequential rejection of repeats = sampling without replacement; a group of size s has
        # at most j < s taken ranks, so each redraw succeeds with probability >= 1/s
        for _ in range(64):
            dup = (ranks[need, :j] == ranks[need, j, None]).any(axis=1)
            if not dup.any():
                break
            redo = need[dup]
            ranks[redo, j] = (rng.random(redo.size) * sizes[redo]).astype(np.int64)
        else:  # astronomically unlikely; stay exact and bounded: take the smallest free rank
            for g in need[(ranks[need, :j] == ranks[need, j, None]).any(axis=1)]:
                ranks[g, j] = np.setdiff1d(np.arange(sizes[g]), ranks[g, :j])[0]
    valid = ranks >= 0
    return flat[(starts[:, None] + ranks)[valid]]


def _nearest_component(labels: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Distance of every pixel to the nearest foreground pixel, and that pixel's component label."""
    fg = labels > 0
    if metric == "euclidean":
        dist, idx = ndimage.distance_transform_edt(~fg, return_indices=True)
    elif metric in ("chessboard", "taxicab"):
        dist, idx = ndimage.distance_transform_cdt(~fg, metric=metric, return_indices=True)
    else:
        raise PromptError(f"metric must be 'chessboard', 'taxicab' or 'euclidean', got {metric!r}")
    return dist, labels[idx[0], idx[1]]


def _band_pixels(labels: np.ndarray, band: tuple[float, float], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Background pixels at distance ``[d_in, d_out]`` from their nearest component, and that component."""
    dist, nearest = _nearest_component(labels, metric)
    in_band = (labels == 0) & (dist >= max(band[0], 1e-9)) & (dist <= band[1])
    flat = np.flatnonzero(in_band)
    return flat, nearest.ravel()[flat]


def global_points(
    mask: np.ndarray,
    n_pos: int = 1,
    n_neg: int = 1,
    rng: np.random.Generator | None = None,
    min_area: int = 0,
    band: tuple[float, float] = (1, 4),
    total: int | None = None,
    metric: str = "chessboard",
    drop_small: bool = False,
    max_points: int | None = None,
) -> Prompt:
    """Global mode: points for every connected component; the target is the whole mask.

    Args:
        mask: bool ``(H, W)`` task label.
        n_pos: positives per component, uniformly inside it, distinct.
        n_neg: negatives per component, from its band: background pixels at distance
            ``band = (d_in, d_out)`` px from it that are nearer to it than to any other component.
        rng: the random generator (required for reproducibility; a fresh unseeded one if None).
        min_area: components with fewer pixels get no points (SAM-OCTA-extend uses 20).
        band: the annulus, in px; symmetric on every side of the component.
        total: if given, a fixed point count: surplus points are dropped at random (positives
            kept first), missing ones are filled with negatives from the band around the whole
            mask (the reference code's ``-1`` setting).
        metric: distance for the band; "chessboard" (a square ring, as the reference's dilation
            but symmetric, and fastest), "taxicab" or "euclidean".
        drop_small: also remove components below ``min_area`` from the target.
        max_points: at most this many points (None: no cap). The decoder's memory grows with the
            square of the points, and a speckled label has thousands of components; past the cap,
            the ``max_points // (n_pos + n_neg)`` largest components keep their points, smaller ones
            get none (the target is unchanged), and a ``PromptCapWarning`` says so.

    Returns:
        ``Prompt``: positives first (component by component), then negatives.
    """
    mask = _check(mask, {"n_pos": n_pos, "n_neg": n_neg, "total": total, "min_area": min_area, "max_points": max_points}, band)
    rng = rng if rng is not None else np.random.default_rng()
    width = mask.shape[1]
    labels, k = ndimage.label(mask, structure=EIGHT, output=np.int32)
    if k == 0:
        return Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), mask.copy())
    sizes = np.bincount(labels.ravel(), minlength=k + 1)
    eligible = sizes >= max(min_area, 1)
    eligible[0] = False
    target = mask & eligible[labels] if drop_small else mask.copy()
    per = n_pos + n_neg
    if max_points is not None and per and int(eligible.sum()) * per > max_points:
        keep_k = max_points // per
        ranked = np.argsort(-np.where(eligible, sizes, -1), kind="stable")[:keep_k]  # largest first, then by label
        warnings.warn(PromptCapWarning(
            f"global prompt: {int(eligible.sum())} components x {per} points would exceed max_points={max_points}; "
            f"the {keep_k} largest components get points, the rest none"), stacklevel=2)
        eligible = np.zeros_like(eligible)
        eligible[ranked] = True
    keep = eligible[labels]  # pixels of eligible components
    fg_flat = np.flatnonzero(keep)
    pos = _sample_groups(fg_flat, labels.ravel()[fg_flat], k, n_pos, rng)
    neg = np.zeros(0, np.int64)
    band_flat = band_group = None
    if n_neg or (total is not None and total > pos.size):
        band_flat, band_group = _band_pixels(labels, band, metric)
        ok = eligible[band_group]
        band_flat, band_group = band_flat[ok], band_group[ok]
        neg = _sample_groups(band_flat, band_group, k, n_neg, rng)
    if total is not None:
        if pos.size + neg.size > total:
            pos = pos if pos.size <= total else rng.choice(pos, total, replace=False)
            neg = rng.choice(neg, total - pos.size, replace=False) if total > pos.size else neg[:0]
        elif pos.size + neg.size < total and band_flat is not None:
            free = np.setdiff1d(band_flat, neg, assume_unique=False)
            extra = rng.choice(free, min(total - pos.size - neg.size, free.size), replace=False)
            neg = np.concatenate([neg, extra])
    coords = np.concatenate([_xy(pos, width), _xy(neg, width)])
    point_labels = np.concatenate([np.ones(pos.size, np.int64), np.zeros(neg.size, np.int64)])
    return Prompt(coords, point_labels, target)


def local_points(
    mask: np.ndarray,
    n_pos: int = 2,
    n_neg: int = 2,
    rng: np.random.Generator | None = None,
    other: np.ndarray | None = None,
    n_cross: int | None = None,
    choose: str = "area",
    min_area: int = 0,
    band: tuple[float, float] = (1, 4),
    cross_radius: float = 10.0,
    metric: str = "chessboard",
) -> Prompt:
    """Local mode: one component is the target, with points inside and around it.

    Args:
        mask: bool ``(H, W)`` task label.
        n_pos: positives inside the chosen component (the paper: 2).
        n_neg: background negatives from its band (the paper: 2).
        rng: the random generator.
        other: bool ``(H, W)`` mask of the other vessel class (veins when segmenting arteries and
            vice versa); if given, ``n_cross`` further negatives lie on other-class pixels that
            are not target-class pixels (crossings excluded), within ``cross_radius`` px of the
            target, or on the nearest such pixels when too few lie that close.
        n_cross: cross negatives; default ``n_neg``.
        choose: "area" (a component with probability proportional to its size, i.e. the
            component of a random foreground pixel, as the reference code) or "uniform".
        min_area: smaller components are never chosen.
        band: the background annulus, as in ``global_points``.
        cross_radius: px.
        metric: distance for the band.

    Returns:
        ``Prompt``: positives, background negatives, then cross negatives; target = the component.
    """
    n_cross = n_neg if n_cross is None else n_cross
    mask = _check(mask, {"n_pos": n_pos, "n_neg": n_neg, "n_cross": n_cross, "min_area": min_area}, band)
    if choose not in ("area", "uniform"):
        raise PromptError(f"choose must be 'area' or 'uniform', got {choose!r}")
    if other is not None:
        other = _binary(other, "other")
        if other.shape != mask.shape:
            raise PromptError(f"other must have the mask's shape {mask.shape}, got {other.shape}")
    rng = rng if rng is not None else np.random.default_rng()
    h, width = mask.shape
    labels, k = ndimage.label(mask, structure=EIGHT, output=np.int32)
    sizes = np.bincount(labels.ravel(), minlength=k + 1)[1:]
    eligible = np.flatnonzero(sizes >= max(min_area, 1)) + 1
    if eligible.size == 0:
        return Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros_like(mask))
    weights = sizes[eligible - 1].astype(float) if choose == "area" else np.ones(eligible.size)
    chosen = int(rng.choice(eligible, p=weights / weights.sum()))
    # work in a crop: a pixel within d_out of the component has its nearest foreground within 2 d_out
    rows, cols = np.nonzero(labels == chosen)
    pad = int(np.ceil(2 * band[1])) + 1
    r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, h)
    c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, width)
    crop = labels[r0:r1, c0:c1]
    target = labels == chosen

    def to_full(flat_crop: np.ndarray) -> np.ndarray:
        rr, cc = np.divmod(flat_crop, c1 - c0)
        return (rr + r0) * width + (cc + c0)

    comp_flat = np.flatnonzero(crop == chosen)
    pos = to_full(_sample_groups(comp_flat, np.ones(comp_flat.size, np.int64), 1, n_pos, rng))
    neg = np.zeros(0, np.int64)
    if n_neg:
        band_flat, band_group = _band_pixels(crop, band, metric)
        sel = band_flat[band_group == chosen]
        neg = to_full(_sample_groups(sel, np.ones(sel.size, np.int64), 1, n_neg, rng))
    cross = np.zeros(0, np.int64)
    if other is not None and n_cross:
        candidates = np.flatnonzero(np.asarray(other, bool) & ~mask)
        if candidates.size:
            dist = ndimage.distance_transform_edt(~target).ravel()[candidates]
            near = candidates[dist <= cross_radius]
            if near.size < n_cross:  # too few close by: the nearest ones, ties broken at random
                near = candidates[np.lexsort((rng.random(candidates.size), dist))[:n_cross]]
            cross = rng.choice(near, min(n_cross, near.size), replace=False)
    coords = np.concatenate([_xy(pos, width), _xy(neg, width), _xy(cross, width)])
    point_labels = np.concatenate([np.ones(pos.size, np.int64), np.zeros(neg.size + cross.size, np.int64)])
    return Prompt(coords, point_labels, target)


# Probabilities above CONFIDENT are sure foreground, below 1 - CONFIDENT sure background; between
# them a first pass is unsure, and automatic prompts put no point there.
CONFIDENT = 0.8


def confident_points(
    probability: np.ndarray,
    n_pos: int = 1,
    n_neg: int = 1,
    rng: np.random.Generator | None = None,
    confident: float = CONFIDENT,
    band: tuple[float, float] = (1, 4),
    max_points: int | None = MAX_POINTS,
) -> Prompt:
    """Prompt points drawn from a model's own probabilities, as global mode draws them from a label.

    The sure foreground (``probability >= confident``) plays the label: each of its components
    gets ``n_pos`` positives inside it and ``n_neg`` negatives in the band around it, and negatives
    that would fall on pixels the model is unsure of (``1 - confident < probability < confident``)
    are dropped. With no sure foreground there are no points.

    Args:
        probability: float ``(H, W)`` in [0, 1], e.g. a prompt-free pass's ``sigmoid(logits)``.
        n_pos, n_neg, rng, band, max_points: as ``global_points``.
        confident: the probability from which a pixel is sure foreground (0.5 < confident < 1).

    Returns:
        ``Prompt`` whose target is the sure foreground (the points' source, not a ground truth).
    """
    probability = np.asarray(probability, np.float64)
    if probability.ndim != 2 or not np.isfinite(probability).all():
        raise PromptError(f"probability must be a finite 2-D (H, W) array, got shape {probability.shape}")
    if not 0.5 < confident < 1:
        raise PromptError(f"confident must lie between 0.5 and 1, got {confident}")
    sure = probability >= confident
    prompt = global_points(sure, n_pos, n_neg, rng, band=band, max_points=max_points)
    unsure = (probability > 1 - confident) & ~sure
    cols, rows = (prompt.coords - 0.5).astype(int).T
    keep = (prompt.labels == 1) | ~unsure[rows, cols]
    return Prompt(prompt.coords[keep], prompt.labels[keep], sure)


@dataclass(frozen=True)
class PromptSpec:
    """A named prompt recipe, callable as ``spec(mask, rng, labels=None) -> Prompt``.

    It is what a ``SegmentationDataset`` takes as ``prompt_fn`` and what a run records in its config.

    Attributes:
        mode: "none" (no points: SAM's padding point only), "global" or "local".
        n_pos, n_neg: points per component (global) or for the chosen component (local).
        task: the task; for "Artery"/"Vein" in local mode, cross negatives come from the other class.
        n_cross: cross negatives (local A/V); default ``n_neg``; 0 switches them off.
        min_area, band, total, choose, cross_radius, metric, max_points: see ``global_points``/``local_points``
            (``max_points`` caps global prompts at ``MAX_POINTS`` by default).
    """

    mode: str = "global"
    n_pos: int = 1
    n_neg: int = 1
    task: str | None = None
    n_cross: int | None = None
    min_area: int = 0
    band: tuple[float, float] = (1, 4)
    total: int | None = None
    choose: str = "area"
    cross_radius: float = 10.0
    metric: str = "chessboard"
    max_points: int | None = MAX_POINTS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PromptError(f"prompt mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def paper(cls, task: str, mode: str = "global") -> "PromptSpec":
        """The counts SAM-OCTA uses: global 1 positive + 1 negative per component (the reference
        code's default), local 2 + 2 with cross negatives for arteries and veins."""
        if mode == "local":
            return cls("local", 2, 2, task=task)
        return cls(mode, 1, 1, task=task) if mode == "global" else cls("none", 0, 0, task=task)

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, mask: np.ndarray, rng: np.random.Generator, labels: dict[str, np.ndarray] | None = None) -> Prompt:
        if self.mode == "none":
            mask = _check(mask, {}, self.band)
            return Prompt(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), mask.copy())
        if self.mode == "global":
            return global_points(mask, self.n_pos, self.n_neg, rng, self.min_area, self.band, self.total, self.metric,
                                 max_points=self.max_points)
        other = None
        if self.task in OTHER_VESSEL and labels is not None and self.n_cross != 0:
            other = labels.get(OTHER_VESSEL[self.task])
        return local_points(
            mask, self.n_pos, self.n_neg, rng, other=other, n_cross=self.n_cross, choose=self.choose,
            min_area=self.min_area, band=self.band, cross_radius=self.cross_radius, metric=self.metric,
        )


def fixed_rng(seed: int, sample_id: int | str) -> np.random.Generator:
    """The generator of a subject's fixed evaluation prompt: same (seed, id), same points, every run
    (a folder dataset's stem keys it through ``samocta.data.ids.id_seed``)."""
    from samocta.data.ids import id_seed

    return np.random.default_rng([int(seed), id_seed(sample_id)])


def evaluation_prompt(
    spec: PromptSpec, sample_id: int | str, mask: np.ndarray, labels: dict[str, np.ndarray] | None = None, seed: int = 0
) -> Prompt:
    """The fixed prompt of one subject for validation and test (it never changes between runs)."""
    return spec(mask, fixed_rng(seed, sample_id), labels=labels)


def collate_prompts(prompts: Sequence[Prompt], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad prompts of different lengths into one batch; padding has label -1 (SAM's "not a point").

    Args:
        prompts: B prompts.
        pad_to: fixed length N (for a static shape, e.g. ``torch.compile``); default the longest.

    Returns:
        ``coords`` float32 ``(B, N, 2)`` (padding at 0, 0) and ``labels`` int64 ``(B, N)``.
    """
    longest = max((len(p) for p in prompts), default=0)
    n = longest if pad_to is None else pad_to
    if longest > n:
        raise PromptError(f"a prompt has {longest} points, more than pad_to={pad_to}")
    coords = np.zeros((len(prompts), n, 2), np.float32)
    labels = np.full((len(prompts), n), -1, np.int64)
    for i, p in enumerate(prompts):
        coords[i, : len(p)] = p.coords
        labels[i, : len(p)] = p.labels
    return coords, labels
