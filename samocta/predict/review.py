"""Reasons to check a scan by hand that no agreement score gives: a scan with no signal, no structure where
every training label had some, a mask unlike the adapter's training labels, a declared width its own
vessels contradict.

The quality score (``samocta.predict.quality``) ranks masks by how well they survive variations; a
blank scan gives an empty mask that survives every variation, so it scores best of all. These checks
look at the scan and the mask against what the adapter recorded (``samocta.train.record``): min,
median and max per subject of the share of the scan covered and, with the scans' width in mm, the
vessels' mean width or the FAZ's area, of its training labels and of its own prompt-free masks of its
validation subjects. A scan with a reason is flagged for review whatever its quality, and ranked first.

The width check answers a mistake no other check sees: 6 mm scans declared as 3 mm are resampled and
measured at half their pixel size, every vessel then half as wide in µm as the adapter's training
labels (real 6M scans measure 53-62 µm; declared as 3 mm, 34-39 µm). The tolerances are wide enough
for what real scans vary; comparing with the adapter's own masks keeps its bias (vessels drawn about 5 µm
too wide) out of the comparison.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

# grey levels between a scan's 1st and 99th percentile below which it holds no image (blank, constant, a
# black frame with a few hot pixels); real OCTA projections span well over 100
SIGNAL_SPAN = 8
# a mask covering a share of the scan outside [min / 3, max * 3] of its training labels' is unlike any of them
AREA_FACTOR = 3.0
# mean vessel widths outside [min / 1.25, max * 1.25] of the training labels': the scan's width in mm is in doubt
WIDTH_FACTOR = 1.25
# the FAZ varies more between eyes (and grows with disease): its area is in doubt outside [min / 2.5, max * 2.5]
FAZ_FACTOR = 2.5


# the order scans with reasons are shown in: a scan with nothing to see first, then one where nothing was found,
# then a width in doubt, then a mask unlike the others
RANKED = ("no signal", "found, where", "is the scan's width", "the mask covers")


def reason_rank(reason: str) -> int:
    """Where a ``review_reason`` ranks for review: 0 first (no signal) ... ``len(RANKED)`` for none."""
    return next((i for i, words in enumerate(RANKED) if words in str(reason)), len(RANKED) - 1 if reason else len(RANKED))


def signal_span(image: np.ndarray) -> float:
    """Grey levels between the 1st and 99th percentile of a scan's uint8 ``(H, W, C)`` channels."""
    low, high = np.percentile(np.asarray(image, np.float64), [1, 99])
    return float(high - low)


def review_reasons(image: np.ndarray, mask: np.ndarray, task: str, measures: Mapping[str, float],
                   label_stats: Mapping[str, tuple[float, float, float]], fov_mm: float | None,
                   mask_stats: Mapping[str, tuple[float, float, float]] | None = None) -> tuple[list[str], str | None]:
    """Why a scan's prediction needs a look whatever its quality, and a warning about its declared width.

    Args:
        image: uint8 ``(H, W, 3)``, the scan as segmented; mask: bool ``(H, W)``, its prediction.
        task: the adapter's task; measures: ``samocta.measure.measure`` of the mask (in mm when ``fov_mm``
            is known, else in pixels).
        label_stats, mask_stats: the adapter's records of its training labels and of its own prompt-free
            masks of its validation subjects (``samocta.model.lora.parse_stats``; empty for an adapter written
            before they were kept). A mask is held against the adapter's own masks where they were measured
            (its bias, e.g. vessels drawn a little wide, is then in both), else against the labels.
        fov_mm: the scan's declared width in mm (None: unknown, so no physical check).

    Returns:
        ``(reasons, warning)``: short texts for the ``review_reason`` column (none: nothing found) and,
        when the scan's own measurements contradict its declared width, the line to warn with.
    """
    mask_stats = mask_stats or {}

    def reference(key: str) -> tuple[tuple[float, float, float] | None, str]:
        if key in mask_stats:
            return mask_stats[key], "the adapter's own masks of its validation scans"
        return label_stats.get(key), "its training labels"

    reasons: list[str] = []
    span = signal_span(image)
    if span < SIGNAL_SPAN:
        reasons.append(f"no signal in the scan (grey levels span {span:.0f})")
    covered = 100.0 * float(np.mean(mask))
    area, source = reference("area_pct")
    if not np.any(mask):
        reasons.append(f"no {task} found, where every training label had some")
    elif area is not None and not (task == "FAZ" and fov_mm is not None and reference("faz_area_mm2")[0] is not None):
        # the FAZ's share of the scan falls with the scan's field (a 6 mm scan's is a quarter of a 3 mm one's):
        # where both widths are known its area in mm² says more, below; a vessel density is much the same at any field
        if not area[0] / AREA_FACTOR <= covered <= area[2] * AREA_FACTOR:
            reasons.append(f"the mask covers {covered:.2f} % of the scan, {source} {area[0]:.2f}-{area[2]:.2f} %")
    warning = None
    key, factor, unit, what = (("faz_area_mm2", FAZ_FACTOR, "mm²", "FAZ area") if task == "FAZ"
                               else ("mean_width_um", WIDTH_FACTOR, "µm", "mean vessel width"))
    value = measures.get(key, float("nan")) if fov_mm is not None else float("nan")
    expected, source = reference(key)
    if expected is not None and np.isfinite(value) and np.any(mask):
        lo, _, hi = expected
        if not lo / factor <= value <= hi * factor:
            reasons.append(f"{what} {value:.3g} {unit}, {source} {lo:.3g}-{hi:.3g} {unit}: is the scan's width {fov_mm:g} mm?")
            warning = (f"its {what} is {value:.3g} {unit} at the declared width of {fov_mm:g} mm, where {source} measured "
                       f"{lo:.3g}-{hi:.3g} {unit}; check its width in mm (--fov-mm, dataset.json)")
    return reasons, warning
