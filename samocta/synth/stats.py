"""Statistics of an OCTA sample, and the real OCTA-500 values the synthetic generator is calibrated on.

The real values were measured on the few OCTA-500 samples that ship inside public code
repositories (3M 10301, 10441; 6M 10001); see ``shared/reference/synthetic-octa.md`` section 8.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number, label, regionprops
from skimage.morphology import skeletonize

from samocta.data.octa500 import LAYERS, Sample

# channel -> quantity -> (low, high) measured on real 3M/6M samples
REAL_INTENSITY = {
    "FULL": {"mean": (118, 125), "std": (48, 53), "RV": (192, 206), "background": (112, 120), "FAZ": (35, 57)},
    "ILM_OPL": {"mean": (100, 105), "std": (49, 53), "RV": (193, 202), "background": (92, 99), "FAZ": (20, 22)},
    "OPL_BM": {"mean": (90, 98), "std": (50, 53), "RV": (172, 184), "background": (84, 92), "FAZ": (31, 41)},
}
# 3M label calibration bands (synthetic-octa.md section 9)
LABEL_BANDS_3M = {"RV": (0.05, 0.12), "Capillary": (0.35, 0.60), "FAZ": (0.01, 0.05)}
REAL_LABELS = {
    "RV fraction": (0.077, 0.083),
    "Capillary fraction": (0.475, 0.475),
    "FAZ area mm2": (0.227, 0.427),
    "RV mean width px (3M)": (2.90, 2.92),
    "Artery fraction": (0.0463, 0.0463),
    "Vein fraction": (0.0362, 0.0362),
}


def widened(band: tuple[float, float], by: float = 0.15) -> tuple[float, float]:
    """A band widened by ``by`` of its ends, as the calibration tests use it."""
    return band[0] * (1 - by), band[1] * (1 + by)


def betti(mask: np.ndarray) -> tuple[int, int]:
    """(beta0 with 8-connectivity, beta1 with 4-connected background) of a zero-padded bool mask."""
    padded = np.pad(mask, 1)
    b0 = int(label(padded, connectivity=2).max())
    return b0, b0 - int(euler_number(padded, connectivity=2))


def intensity_stats(sample: Sample) -> dict[str, dict[str, float]]:
    """Per channel: mean, std, RV / background (non-RV, non-FAZ) / FAZ means, saturation, row-mean std."""
    rv, faz = sample.labels["RV"], sample.labels["FAZ"]
    background = ~rv & ~faz
    out = {}
    for c, name in enumerate(LAYERS):
        x = sample.image[..., c].astype(np.float64)
        highpass = x - ndimage.gaussian_filter(x, 1.0)
        out[name] = {
            "mean": x.mean(),
            "std": x.std(),
            "RV": x[rv].mean() if rv.any() else np.nan,
            "background": x[background].mean(),
            "FAZ": x[faz].mean() if faz.any() else np.nan,
            "saturated": float((x == 255).mean()),
            "row-mean std": x.mean(axis=1).std(),
            "high-pass std": highpass[background].std(),
        }
    return out


def label_stats(sample: Sample, px_um: float) -> dict[str, float]:
    """Pixel fractions, RV mean width, FAZ area/shape and topology of the labels."""
    lab = sample.labels
    rv_skel = skeletonize(lab["RV"]).sum()
    faz_props = regionprops(label(lab["FAZ"]))
    out = {f"{k} fraction": float(v.mean()) for k, v in lab.items()}
    out["RV mean width px"] = float(lab["RV"].sum() / max(rv_skel, 1))
    out["FAZ area mm2"] = float(lab["FAZ"].sum() * px_um**2 / 1e6)
    if faz_props:
        out["FAZ solidity"] = float(faz_props[0].solidity)
        out["FAZ eccentricity"] = float(faz_props[0].eccentricity)
    for task in ("RV", "Artery", "Vein", "Capillary", "FAZ"):
        out[f"{task} beta0"], out[f"{task} beta1"] = betti(lab[task])
    return out
