from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from samocta.metrics import (
    all_metrics,
    betti_errors,
    betti_numbers,
    cldice,
    confusion,
    dice,
    hausdorff,
    hd95,
    jaccard,
    precision,
    recall,
    summarize,
)


def square(shape=(40, 40), r0=10, c0=10, size=10):
    m = np.zeros(shape, bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def test_identical_and_disjoint():
    a = square()
    for f in (dice, jaccard, precision, recall, cldice):
        assert f(a, a) == 1.0
    b = square(r0=25, c0=25)
    for f in (dice, jaccard, precision, recall, cldice):
        assert f(a, b) == 0.0
    assert hd95(a, a) == 0.0 and betti_errors(a, a) == (0, 0)


def test_half_overlap():
    gt = square(size=10)  # 100 px
    pred = square(c0=15, size=10)  # overlaps 10 x 5 = 50 px
    assert dice(pred, gt) == pytest.approx(0.5)
    assert jaccard(pred, gt) == pytest.approx(50 / 150)
    assert precision(pred, gt) == pytest.approx(0.5) and recall(pred, gt) == pytest.approx(0.5)


def test_precision_and_recall_are_not_swapped():
    gt = square(size=10)  # 100 px
    pred = np.zeros_like(gt)
    pred[10:15, 10:20] = True  # 50 px, all inside gt
    tp, fp, fn, tn = confusion(pred, gt)
    assert (tp, fp, fn) == (50, 0, 50) and tn == gt.size - 100
    assert precision(pred, gt) == 1.0  # everything predicted is right
    assert recall(pred, gt) == 0.5  # half the truth is found
    big = square(r0=5, c0=5, size=20)  # 400 px containing gt
    assert precision(big, gt) == pytest.approx(0.25) and recall(big, gt) == 1.0


def test_empty_cases():
    e, a = np.zeros((20, 20), bool), square((20, 20), 5, 5, 5)
    for f in (dice, jaccard, precision, recall, cldice):
        assert f(e, e) == 1.0, f.__name__
        assert f(e, a) == 0.0 and f(a, e) == 0.0, f.__name__
    assert hd95(e, e) == 0.0
    assert math.isnan(hd95(e, a)) and math.isnan(hd95(a, e))
    assert betti_errors(e, a) == (1, 0)
    m = all_metrics(e, e)
    assert m["dice"] == 1.0 and m["hd95"] == 0.0


def test_shifted_line_has_hd95_five():
    gt = np.zeros((60, 60), bool)
    gt[5:55, 20] = True
    pred = np.roll(gt, 5, axis=1)
    assert hd95(pred, gt) == pytest.approx(5.0)
    assert hausdorff(pred, gt) == pytest.approx(5.0)
    disk_gt = np.hypot(*np.mgrid[-30:30, -30:30]) < 10
    assert hausdorff(np.roll(disk_gt, 5, axis=1), disk_gt) == pytest.approx(5.0)


def test_single_far_false_positive_is_measured_in_pixels():
    gt = np.zeros((200, 200), bool)
    gt[10:20, 10:20] = True
    pred = gt.copy()
    pred[190, 150] = True
    far = math.hypot(190 - 19, 150 - 19)  # to the nearest gt boundary pixel (19, 19)
    assert hausdorff(pred, gt) == pytest.approx(far, abs=1e-4)  # the reference code reported 1.0
    assert far > 160
    assert hd95(pred, gt) < 2  # one pixel among 37 boundary pixels is beyond the 95th percentile


def test_betti_numbers():
    diag = np.eye(12, dtype=bool)  # an 8-connected diagonal line: one component
    assert betti_numbers(diag) == (1, 0)
    ring = (np.hypot(*np.mgrid[-10:11, -10:11]) <= 8) & (np.hypot(*np.mgrid[-10:11, -10:11]) >= 5)
    assert betti_numbers(ring) == (1, 1)
    # a ring of diagonal steps: 8-connected foreground closes it, 4-connected background cannot leak
    diamond = np.zeros((7, 7), bool)
    for r, c in [(1, 3), (2, 2), (3, 1), (4, 2), (5, 3), (4, 4), (3, 5), (2, 4)]:
        diamond[r, c] = True
    assert betti_numbers(diamond) == (1, 1)
    touching_border = np.zeros((5, 5), bool)
    touching_border[0, :] = touching_border[:, 0] = touching_border[4, :] = touching_border[:, 4] = True
    assert betti_numbers(touching_border) == (1, 1)  # zero-padded, so the frame encloses its hole
    two = np.zeros((10, 10), bool)
    two[1, 1] = two[8, 8] = True
    assert betti_errors(two, np.eye(10, dtype=bool)) == (1, 0)


def test_cldice_identical_and_broken_vessel():
    gt = np.zeros((40, 40), bool)
    gt[18:21, 2:38] = True
    assert cldice(gt, gt) == 1.0
    broken = gt.copy()
    broken[:, 19:22] = False
    assert 0.8 < cldice(broken, gt) < 1.0
    assert cldice(broken, gt) < 1.0 and dice(broken, gt) > 0.9


def test_input_checks():
    with pytest.raises(ValueError, match="one shape"):
        dice(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_summarize_per_fold_and_across_folds():
    records = []
    for fold, base in ((0, 0.8), (1, 0.6)):
        for i, d in enumerate((base - 0.1, base + 0.1)):
            records.append({"id": i, "fold": fold, "task": "RV", "fov": "3M", "mode": "global", "dice": d, "hd95": float("nan") if i else 2.0})
    table = summarize(records)
    assert table.loc[("RV", "3M", "global", "0"), "dice"] == pytest.approx(0.8)
    assert table.loc[("RV", "3M", "global", "0"), "dice_std"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert table.loc[("RV", "3M", "global", "0"), "hd95"] == 2.0  # the NaN is left out
    assert table.loc[("RV", "3M", "global", "0"), "hd95_n"] == 1  # the mean used one value of two
    assert table.loc[("RV", "3M", "global", "0"), "n_subjects"] == 2
    all_row = table.loc[("RV", "3M", "global", "all")]
    assert all_row["dice"] == pytest.approx(0.7)
    assert all_row["dice_std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert all_row["n_folds"] == 2 and all_row["n_subjects"] == 4 and all_row["hd95_n"] == 2
    no_fold = summarize(pd.DataFrame(records).drop(columns="fold"))
    assert no_fold.loc[("RV", "3M", "global"), "dice"] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        summarize([])


def test_summarize_counts_empty_predictions_instead_of_hiding_them():
    records = [
        {"fold": 0, "task": "FAZ", "fov": "3M", "mode": "none", "dice": 0.0, "hd95": float("nan"), "pred_pixels": 0},
        {"fold": 0, "task": "FAZ", "fov": "3M", "mode": "none", "dice": 0.9, "hd95": 2.0, "pred_pixels": 50},
        {"fold": 1, "task": "FAZ", "fov": "3M", "mode": "none", "dice": 0.8, "hd95": 3.0, "pred_pixels": 40},
    ]
    table = summarize(records)
    fold0 = table.loc[("FAZ", "3M", "none", "0")]
    assert fold0["n_subjects"] == 2 and fold0["hd95_n"] == 1 and fold0["empty_predictions"] == 1
    assert fold0["dice"] == pytest.approx(0.45)  # the empty prediction counts in Dice
    every = table.loc[("FAZ", "3M", "none", "all")]
    assert every["empty_predictions"] == 1 and every["n_subjects"] == 3 and every["n_folds"] == 2


def test_all_metrics_agree_with_the_single_functions():
    from samocta.synth import make_sample

    sample = make_sample("3M", 3, 128)
    rng = np.random.default_rng(0)
    for task in ("RV", "FAZ", "Capillary"):
        gt = sample.labels[task]
        pred = np.roll(gt, 2, axis=1) & (rng.random(gt.shape) > 0.1)
        got = all_metrics(pred, gt)
        assert got["dice"] == pytest.approx(dice(pred, gt))
        assert got["jaccard"] == pytest.approx(jaccard(pred, gt))
        assert got["precision"] == pytest.approx(precision(pred, gt))
        assert got["recall"] == pytest.approx(recall(pred, gt))
        assert got["cldice"] == pytest.approx(cldice(pred, gt))
        assert got["hd95"] == pytest.approx(hd95(pred, gt), abs=1e-4)
        assert (got["betti0_error"], got["betti1_error"]) == betti_errors(pred, gt)
