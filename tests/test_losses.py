from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.morphology import skeletonize

from samocta.train import loss_for_task
from samocta.train.losses import (
    PRESETS,
    DiceClDiceLoss,
    DiceLoss,
    dice_cldice_loss,
    dice_loss,
    soft_cldice_loss,
    soft_skeleton,
)


def vessel_target(size=48, seed=0):
    """A few thick lines: (1, 1, H, W) float tensor."""
    t = torch.zeros(1, 1, size, size)
    t[0, 0, 20:25, 4:44] = 1
    t[0, 0, 4:44, 30:33] = 1
    return t


@pytest.mark.parametrize("fn", [dice_loss, soft_cldice_loss, dice_cldice_loss])
def test_losses_are_differentiable_float64(fn):
    target = vessel_target(20)
    logits = torch.randn(2, 1, 20, 20, dtype=torch.float64, requires_grad=True)
    target = target[..., :20, :20].expand(2, 1, 20, 20).double()
    loss = fn(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad is not None and logits.grad.abs().sum() > 0
    if fn is dice_loss:  # smooth everywhere: a numerical gradient check
        assert torch.autograd.gradcheck(lambda x: dice_loss(x, target), (logits.detach().requires_grad_(),))


def test_perfect_prediction_gives_minimal_loss():
    target = vessel_target()
    perfect = target * 40 - 20  # logits: sigmoid -> 1 on the vessel, 0 elsewhere
    assert dice_loss(perfect, target) < 1e-6
    assert soft_cldice_loss(perfect, target) < 1e-6
    assert dice_cldice_loss(perfect, target) < 1e-6
    assert dice_loss(target, target, from_logits=False) == 0
    wrong = -perfect
    assert dice_loss(wrong, target) > 0.95 and soft_cldice_loss(wrong, target) > 0.9
    empty = torch.zeros(1, 1, 8, 8)
    assert dice_loss(empty - 20, empty) < 1e-6  # empty target, empty prediction: no loss


def test_dice_is_per_sample_not_summed_over_the_batch():
    big, small = vessel_target(), torch.zeros(1, 1, 48, 48)
    small[0, 0, 0, 0] = 1
    target = torch.cat([big, small])
    pred = torch.cat([big, torch.zeros_like(small)]) * 40 - 20  # sample 2 misses its one pixel
    per_sample = (dice_loss(pred[:1], target[:1]) + dice_loss(pred[1:], target[1:])) / 2
    assert dice_loss(pred, target) == pytest.approx(per_sample.item(), abs=1e-6)
    assert dice_loss(pred, target) > 0.2  # a batch-summed Dice would hide the missed sample (< 0.01)


@pytest.mark.parametrize("fn", [dice_loss, soft_cldice_loss, lambda p, t: dice_cldice_loss(p, t, 0.2, 0.8)])
def test_gradient_descent_lowers_the_loss(fn):
    torch.manual_seed(0)
    target = vessel_target()
    logits = torch.zeros_like(target, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.3)
    first = fn(logits, target).item()
    for _ in range(30):
        opt.zero_grad()
        loss = fn(logits, target)
        loss.backward()
        opt.step()
    assert fn(logits, target).item() < 0.6 * first


def test_soft_skeleton_of_a_thick_line_is_near_its_true_skeleton():
    mask = np.zeros((40, 60), bool)
    mask[15:24, 5:55] = True  # a 9 px thick bar: radius 4
    soft = soft_skeleton(torch.from_numpy(mask).float()[None, None], iters=10)[0, 0].numpy()
    true = skeletonize(mask)
    on = soft > 0.5
    assert on.any()
    rows = np.nonzero(on)[0]
    assert np.all(np.abs(rows - 19) <= 1)  # on the centre line, rows 18-20
    covered = np.abs(np.nonzero(true)[1][:, None] - np.nonzero(on)[1][None]).min(1)
    assert np.mean(covered <= 1) > 0.9  # and along most of the true skeleton
    # too few iterations never reach the centre of a thick structure
    assert soft_skeleton(torch.from_numpy(mask).float()[None, None], iters=1)[0, 0, 19, 30] < 0.5


def test_loss_for_task_and_presets():
    assert isinstance(loss_for_task("FAZ"), DiceLoss) and isinstance(loss_for_task("Capillary"), DiceLoss)
    rv = loss_for_task("RV")
    assert isinstance(rv, DiceClDiceLoss) and (rv.w_dice, rv.w_cldice) == (0.2, 0.8)
    ref = loss_for_task("Vein", preset="reference_code")
    assert (ref.w_dice, ref.w_cldice) == PRESETS["reference_code"] == (0.96, 0.04)
    target = vessel_target()
    pred = torch.randn_like(target)
    expected = 0.96 * dice_loss(pred, target) + 0.04 * soft_cldice_loss(pred, target)
    assert ref(pred, target) == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="unknown task"):
        loss_for_task("Retina")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        dice_loss(torch.zeros(4, 4), torch.zeros(4, 4))


def test_the_boundary_term_makes_a_vessel_drawn_too_wide_cost_more():
    from samocta.train.losses import WithBoundary

    target = torch.zeros(2, 1, 64, 64)
    target[:, :, 30:34, :] = 1
    exact = torch.where(target > 0, 8.0, -8.0)
    wide = exact.clone()
    wide[:, :, [29, 34], :] = 8.0  # a pixel too wide on each side
    far = exact.clone()
    far[:, :, 60, :] = 8.0  # the same number of false pixels, far from the vessel
    plain, bounded = loss_for_task("RV"), loss_for_task("RV", boundary=1.0)
    assert isinstance(bounded, WithBoundary)
    assert bounded(wide, target) - bounded(exact, target) > plain(wide, target) - plain(exact, target)
    assert bounded(far, target) > bounded(wide, target)  # a false pixel pays by its distance from the border
    assert loss_for_task("FAZ", boundary=0.5, reduction="none")(exact, target).shape == (2,)
    with pytest.raises(ValueError, match="above 0"):
        WithBoundary(plain, 0.0)
