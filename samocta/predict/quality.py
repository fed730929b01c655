"""When to trust a mask nobody has labelled: a quality score per scan, its review flag, and its calibration.

Two signals cost little beyond the prediction itself:

- **predicted IoU**: what SAM's decoder says of its own prompt-free mask (its IoU head), averaged over
  the scan's views;
- **agreement**: how far the mask survives cheap variations: the same prompts on the mirrored scan
  (mask mirrored back) and the other label-free way of prompting it ("none" <-> "auto"; clicked
  points: "none"). The mean Dice of the mask with each variation;
- **confidence**: how sure the model is of its own mask, pixel by pixel: the soft Dice of its
  probability map with the mask thresholded from it, ``2 sum(p m) / (sum(p) + sum(m))``, the Dice
  the mask would have against a label drawn from the probabilities (an "expected Dice", as in
  Jungo and Reyes, MICCAI 2019, on uncertainty as a quality estimate); 1 when every pixel is certain.

``QUALITY_SCORE`` names the one ``predict`` reports as ``quality``, chosen on held-out labelled
synthetic subjects by ``calibrate`` (rank correlation with the true Dice, share of the worst masks
caught at a 10 % review rate; ``benchmarks/bench_clicks.py``, figures in ``benchmarks/RESULTS.md``).
The ``review`` flag marks the lowest-quality share of the scans of one prediction run
(``review_flags``, default ``REVIEW_RATE``): a fixed threshold would not carry over, since the
agreement a good vessel mask reaches is lower than a good FAZ's. The variations also give the
measurements an interval (their lowest and highest value), e.g. the FAZ area in ``measurements.csv``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from samocta.core.errors import InputError

if TYPE_CHECKING:
    from samocta.model import PromptableSam

QUALITY_SIGNALS = ("agreement", "predicted_iou", "confidence")
QUALITY_SCORE = "agreement"
"""The signal reported as ``quality`` (the better of ``QUALITY_SIGNALS`` on held-out subjects)."""
REVIEW_RATE = 0.1
"""The share of a run's scans flagged for review by default (the lowest quality first)."""


@dataclass
class ScanQuality:
    """One scan's prediction and what it says of itself.

    Attributes:
        mask: bool ``(H, W)``, the prediction (as ``predict`` gives it).
        predicted_iou: the decoder's predicted IoU of the prompt-free mask, mean over views.
        agreement: mean Dice of ``mask`` with each of ``variations``.
        variations: name -> bool ``(H, W)``: "mirrored" and "none" or "auto".
        confidence: the soft Dice of the mask's probabilities with the mask itself.
    """

    mask: np.ndarray
    predicted_iou: float
    agreement: float
    variations: dict[str, np.ndarray]
    confidence: float

    @property
    def quality(self) -> float:
        return float(getattr(self, QUALITY_SCORE))


@torch.inference_mode()
def scan_quality(
    model: "PromptableSam",
    image: np.ndarray,
    prompt="none",
    pixel_um: float | None = None,
    threshold: float = 0.5,
    rng_seed: Sequence[int] = (0, 0),
) -> ScanQuality:
    """The prediction for one scan and its quality signals.

    Args:
        model: a ``PromptableSam``/``LoRASam``.
        image: uint8 ``(H, W, 3)``.
        prompt: "none", "auto", or clicked ``(coords (N, 2) (x, y), labels (N,))`` (pixel centres at ``i + 0.5``).
        pixel_um: the scan's pixel size (as ``predict`` takes it).
        threshold: on probabilities.
        rng_seed: the automatic prompts' generator seed (``predict`` uses ``(seed, i)``).
    """
    from samocta.decode.modes import AutoPromptFallback, decode_prompt
    from samocta.decode.views import scan_views
    from samocta.metrics import dice
    from samocta.model.promptable import binarize

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InputError(f"images must be (H, W, 3) uint8, got {image.shape}")
    width = image.shape[1]
    model.eval()
    where = "the scan"
    resampling, embeddings = scan_views(model, image, pixel_um, where)

    def logits_of(how, views, embs):
        return decode_prompt(model, views, embs, how, np.random.default_rng(list(rng_seed)))

    def run(how, views, embs):
        return binarize(logits_of(how, views, embs), threshold)[0]

    logits = logits_of(prompt, resampling, embeddings)
    mask = binarize(logits, threshold)[0]
    if isinstance(prompt, str):
        mirrored_prompt = prompt
    else:
        coords, labels = prompt
        coords = np.asarray(coords, np.float32).reshape(-1, 2).copy()
        coords[:, 0] = width - coords[:, 0]
        mirrored_prompt = (coords, labels)
    flipped = np.ascontiguousarray(image[:, ::-1])
    f_resampling, f_embeddings = scan_views(model, flipped, pixel_um, where)
    other = "auto" if isinstance(prompt, str) and prompt == "none" else "none"
    with warnings.catch_warnings():  # a variation falling back to the prompt-free mask is not the user's result
        warnings.simplefilter("ignore", AutoPromptFallback)
        variations = {"mirrored": run(mirrored_prompt, f_resampling, f_embeddings)[:, ::-1],
                      other: run(other, resampling, embeddings)}
    ious = []
    for embedding in embeddings:
        out = model.decode_unprompted(embedding)
        ious.append(float(out.iou[0, out.selected[0]]))
    agreement = float(np.mean([dice(mask, v) for v in variations.values()]))
    return ScanQuality(mask, float(np.mean(ious)), agreement, variations, self_dice(logits, mask))


def self_dice(logits: torch.Tensor, mask: np.ndarray, smooth: float = 1.0) -> float:
    """``(2 sum(p m) + s) / (sum(p) + sum(m) + s)`` of the probabilities ``p = sigmoid(logits)``
    (``(1, 1, H, W)``) and the bool ``(H, W)`` mask thresholded from them. ``s`` (one pixel, as in the
    Dice loss) keeps a certain empty mask, whose probabilities are tiny but not 0, at 1."""
    p = torch.sigmoid(logits[0, 0].float()).cpu().numpy().astype(np.float64)
    m = np.asarray(mask, np.float64)
    return float((2 * (p * m).sum() + smooth) / (p.sum() + m.sum() + smooth))


def interval(measure_of, quality: ScanQuality, key: str) -> tuple[float, float]:
    """The lowest and highest ``measure_of(mask)[key]`` over the mask and its variations."""
    values = [measure_of(m)[key] for m in (quality.mask, *quality.variations.values())]
    return float(np.nanmin(values)), float(np.nanmax(values))


def review_flags(quality: Sequence[float], rate: float = REVIEW_RATE, forced: Sequence[bool] | None = None) -> np.ndarray:
    """bool ``(N,)``: the ``round(rate * N)`` scans of lowest quality (ties: the earlier scan first).

    Args:
        forced: scans flagged whatever their quality (a reason to look, ``samocta.predict.review``); they
            count towards the share, the lowest quality of the others fill the rest of it.
    """
    if not 0 <= rate <= 1:
        raise InputError(f"--review-rate is a share of the scans, 0 to 1; got {rate}")
    share = int(round(rate * len(quality)))
    if forced is None:
        return _lowest(quality, share)
    forced = np.asarray(forced, bool)
    # the forced scans rank below every other: a blank scan's perfect agreement must not hide it
    ranked = np.where(forced, -np.inf, np.asarray(quality, np.float64))
    return _lowest(ranked, max(share, int(forced.sum())))


def _lowest(values: Sequence[float], k: int) -> np.ndarray:
    """bool ``(N,)``: the ``k`` lowest ``values`` (ties: the earlier first); the one ranking flag and calibration share."""
    flags = np.zeros(len(values), bool)
    flags[np.argsort(np.asarray(values, np.float64), kind="stable")[:k]] = True
    return flags


def calibrate(score: Sequence[float], true_dice: Sequence[float], review_rate: float = 0.1) -> dict[str, float]:
    """How well a quality score tells good masks from bad on labelled subjects.

    Args:
        score: per subject, higher = more trusted.
        true_dice: per subject, against the label.
        review_rate: the share of subjects sent to review (the lowest scores).

    Returns:
        ``spearman`` (rank correlation of score and Dice), ``caught`` (the share of the worst
        ``review_rate`` masks by true Dice that the lowest ``review_rate`` scores flag), ``n_review``
        (how many that is), ``threshold`` (the score at that rate) and ``n``.
    """
    from scipy.stats import spearmanr

    score, true_dice = np.asarray(score, np.float64), np.asarray(true_dice, np.float64)
    if score.shape != true_dice.shape or score.ndim != 1 or len(score) < 3:
        raise InputError(f"calibration needs one score per subject's Dice, at least 3; got {score.shape} and {true_dice.shape}")
    if not 0 < review_rate < 1:
        raise InputError(f"the review rate lies between 0 and 1, got {review_rate}")
    k = max(1, int(round(review_rate * len(score))))
    caught = np.count_nonzero(_lowest(score, k) & _lowest(true_dice, k)) / k
    rho = spearmanr(score, true_dice).statistic if np.ptp(score) > 0 and np.ptp(true_dice) > 0 else float("nan")
    return {"spearman": float(rho), "caught": caught, "n_review": k,
            "threshold": float(np.sort(score)[k - 1]), "n": int(len(score))}
