"""Simulated corrective clicks: the click rule on hand-made masks, NoC, and the click decode on stand-in
models whose answers are known (one that returns the label, one that corrects the region clicked)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from samocta.core.connectivity import EIGHT
from samocta.core.errors import InputError
from samocta.decode import ClickSession, next_click, plan_resampling
from samocta.evaluate import click_curve, click_summary, noc
from samocta.model import MaskOutput


def square(shape, top, left, side):
    mask = np.zeros(shape, bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_the_click_lands_at_the_centre_of_the_largest_missed_region_as_a_positive():
    target = square((64, 64), 10, 30, 11) | square((64, 64), 50, 5, 3)
    click = next_click(np.zeros_like(target), target)
    assert (click.x, click.y, click.label, click.region_px) == (35.5, 15.5, 1, 121)


def test_a_larger_false_region_gets_a_negative_click_and_a_tie_goes_to_the_missed_one():
    target = square((64, 64), 10, 10, 5)
    pred = square((64, 64), 30, 30, 9)  # 81 false pixels against 25 missed
    click = next_click(pred, target)
    assert (click.x, click.y, click.label) == (34.5, 34.5, 0)
    assert pred[int(click.y), int(click.x)] and not target[int(click.y), int(click.x)]
    tie = next_click(square((64, 64), 40, 40, 5), target)  # 25 missed, 25 false
    assert tie.label == 1 and target[int(tie.y), int(tie.x)]


def test_the_image_border_counts_as_the_boundary_and_diagonal_vessels_are_one_region():
    target = np.zeros((32, 32), bool)
    target[:, :6] = True  # a band along the left border: its centre is 3 px in, not on the edge
    click = next_click(np.zeros_like(target), target)
    assert click.x == 2.5 or click.x == 3.5
    diagonal = np.eye(20, dtype=bool)
    blob = square((20, 20), 15, 0, 3)  # 9 pixels, against a 20-pixel diagonal line
    click = next_click(np.zeros((20, 20), bool), diagonal | blob)
    assert click.region_px == 20 and diagonal[int(click.y), int(click.x)]


def test_ties_within_a_region_are_drawn_by_the_generator_and_the_same_seed_gives_the_same_click():
    target = np.zeros((16, 16), bool)
    target[4:6, 2:14] = True  # a 2 px band: many pixels equally far from its boundary
    clicks = {next_click(np.zeros_like(target), target, np.random.default_rng(s)) for s in range(12)}
    assert len(clicks) > 1
    assert next_click(np.zeros_like(target), target, np.random.default_rng(3)) == \
        next_click(np.zeros_like(target), target, np.random.default_rng(3))
    assert next_click(target, target) is None
    with pytest.raises(InputError, match="one size"):
        next_click(target, target[:8])


def test_noc_counts_a_curve_that_never_reaches_the_target_as_the_maximum():
    assert noc(np.array([0.2, 0.86, 0.91]), 0.85) == (1, True)
    assert noc(np.array([0.2, 0.86, 0.91]), 0.90) == (2, True)
    assert noc(np.array([0.2, 0.5, 0.6]), 0.85) == (2, False)
    assert noc(np.array([0.95, 0.5]), 0.85) == (0, True)


class Oracle:
    """A stand-in SAM whose masks are known.

    "label": every decode returns the label, prompted or not. "correct": a decode starts from the mask
    fed back (empty without one) and corrects the error region under the last click, so each click
    fixes one region and Dice can only rise. Low-resolution logits are kept at the image's size.
    """

    click_sigma = None  # decodes as the official SAM: the previous logits are fed back

    def __init__(self, target, kind):
        self.target, self.kind, self.calls, self.fed = target, kind, 0, []

    def eval(self):
        return self

    def _out(self, mask):
        logits = torch.where(torch.as_tensor(mask), 10.0, -10.0)[None, None]
        return MaskOutput(logits, logits, torch.ones(1, 1), torch.zeros(1, dtype=torch.long))

    def decode(self, embedding, coords, labels, mask_input=None):
        self.calls += 1
        self.fed.append(mask_input is not None)
        if self.kind == "label":
            return self._out(self.target)
        pred = np.zeros_like(self.target) if mask_input is None else mask_input[0, 0].numpy() > 0
        x, y = np.asarray(coords[0])[-1]
        error = pred ^ self.target
        regions, _ = ndimage.label(error, structure=EIGHT)
        hit = regions == regions[int(y), int(x)]
        if regions[int(y), int(x)]:
            pred = np.where(hit, self.target, pred)
        return self._out(pred)

    def decode_unprompted(self, embedding):
        self.calls += 1
        self.fed.append(False)
        return self._out(self.target if self.kind == "label" else np.zeros_like(self.target))


def blobs():
    target = np.zeros((48, 48), bool)
    for top, left, side in ((4, 4, 9), (25, 30, 12), (36, 6, 5), (5, 36, 3)):
        target |= square(target.shape, top, left, side)
    return target


def curve_of(model, target, **kw):
    resampling = plan_resampling(target.shape, None, None)
    return click_curve(model, resampling, [None], target, **kw)


def test_a_model_that_returns_the_label_needs_no_click_from_no_prompt_and_one_from_nothing():
    target = blobs()
    from_none = curve_of(Oracle(target, "label"), target, max_clicks=5, start="none")
    assert noc(from_none.dice, 0.9) == (0, True) and from_none.clicks == [] and (from_none.dice == 1).all()
    from_click = curve_of(Oracle(target, "label"), target, max_clicks=5, start="click")
    assert from_click.dice[0] == 0 and noc(from_click.dice, 0.9) == (1, True) and len(from_click.clicks) == 1


def test_an_oracle_that_fixes_the_clicked_region_gives_a_rising_curve_one_region_a_click():
    target = blobs()
    model = Oracle(target, "correct")
    curve = curve_of(model, target, max_clicks=6, start="click")
    assert (np.diff(curve.dice) >= 0).all()
    assert curve.dice[4] == 1 and curve.dice[3] < 1  # four regions: four clicks, largest first
    assert [c.region_px for c in curve.clicks] == [144, 81, 25, 9]
    assert model.fed == [False, True, True, True]  # the first click has no mask to feed back
    # without the feedback the oracle forgets what the clicks before fixed: the curve does not rise
    flat = curve_of(Oracle(target, "correct"), target, max_clicks=4, start="click", feedback=False)
    assert flat.dice[4] < 1


def test_a_session_replays_only_what_changed_and_gives_what_decoding_afresh_gives():
    target = blobs()
    resampling = plan_resampling(target.shape, None, None)
    clicks = [(8.5, 8.5, 1), (35.5, 30.5, 1), (8.5, 38.5, 1)]
    coords = np.array([c[:2] for c in clicks], np.float32)
    labels = np.array([c[2] for c in clicks])
    model = Oracle(target, "correct")
    session = ClickSession(model, resampling, [None])
    for x, y, label in clicks:
        session.add(x, y, label)
    assert model.calls == 3
    undone = session.decode(coords[:2], labels[:2]).clone()  # an undo: nothing decoded again
    assert model.calls == 3
    fresh = ClickSession(Oracle(target, "correct"), resampling, [None]).decode(coords[:2], labels[:2])
    assert torch.equal(undone, fresh)
    session.decode(coords[[0, 2]], labels[[0, 2]])  # the middle click removed: one decode after the kept first
    assert model.calls == 4
    assert session.decode(coords[:0], labels[:0]) is None


def test_the_summary_reports_dice_at_clicks_and_noc_with_what_was_never_reached():
    rows = []
    for sid, curve in (("a", [0.0, 0.86, 0.92, 0.95]), ("b", [0.0, 0.5, 0.6, 0.7])):
        rows += [{"id": sid, "task": "FAZ", "fov": "3M", "start": "click", "feedback": True, "click": k, "dice": d}
                 for k, d in enumerate(curve)]
    summary = click_summary(pd.DataFrame(rows)).iloc[0]
    assert summary["dice@1"] == pytest.approx(0.68) and summary["dice@3"] == pytest.approx(0.825)
    assert np.isnan(summary["dice@10"])
    assert summary["NoC@85"] == pytest.approx(2.0) and summary["not reached @85"] == 1  # (1 + 3) / 2
    assert summary["NoC@90"] == pytest.approx(2.5) and summary["not reached @90"] == 1
    assert summary["n_subjects"] == 2 and summary["max_clicks"] == 3
