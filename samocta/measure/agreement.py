"""Agreement between two ways of measuring the same subjects: Bland-Altman bias and limits, and ICC(2,1).

- Bland & Altman, "Statistical methods for assessing agreement between two methods of clinical
  measurement", The Lancet 327(8476), 1986: the mean difference (bias) and the 95 % limits of
  agreement, bias +- 1.96 standard deviations of the differences.
- Shrout & Fleiss, "Intraclass correlations: uses in assessing rater reliability", Psychological
  Bulletin 86(2), 1979: ICC(2,1), two-way random effects, absolute agreement, one measurement per
  rater, ``(MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)`` over n subjects and k raters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samocta.core.errors import InputError


@dataclass(frozen=True)
class Agreement:
    """How well ``b`` (e.g. from predicted masks) agrees with ``a`` (from the labels) over n subjects."""

    n: int
    mean_a: float
    mean_b: float
    bias: float  # mean of b - a
    loa_low: float  # bias - 1.96 sd
    loa_high: float  # bias + 1.96 sd
    icc21: float


def icc21(ratings: np.ndarray) -> float:
    """ICC(2,1) of an ``(n subjects, k raters)`` array (Shrout & Fleiss's case 2, single measures)."""
    x = np.asarray(ratings, float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        raise InputError(f"ICC needs finite ratings of 2 or more subjects by 2 or more raters; got shape {x.shape}")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    return float((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n))


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Bland-Altman bias and 95 % limits of ``b - a``, and ICC(2,1) of the pair, over subjects where both are finite."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"two 1-D measurements of the same subjects are needed; got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = b - a
    sd = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
    bias = float(d.mean()) if len(d) else float("nan")
    return Agreement(int(len(d)), float(a.mean()), float(b.mean()), bias, bias - 1.96 * sd, bias + 1.96 * sd,
                     icc21(np.stack([a, b], axis=1)) if len(d) > 1 else float("nan"))
