"""Training losses: soft Dice, soft clDice, and the per-task loss of SAM-OCTA.

All losses take predictions and targets of shape ``(B, 1, H, W)`` at the label's resolution.
Predictions are **logits** by default (``from_logits=True`` applies a sigmoid); pass
``from_logits=False`` for probabilities in [0, 1]. Every loss is computed per sample and then
averaged over the batch (the reference code summed Dice over the whole batch).

References:
    - F. Milletari, N. Navab, S.-A. Ahmadi, "V-Net", 3DV 2016 (soft Dice).
    - S. Shit, J. C. Paetzold, et al., "clDice - a novel topology-preserving loss function for
      tubular structure segmentation", CVPR 2021 (soft skeleton, soft clDice).
    - C. Wang, X. Chen, H. Ning, S. Li, "SAM-OCTA", ICASSP 2024: Dice for FAZ and capillaries,
      0.2 Dice + 0.8 clDice' for RV, arteries and veins.
    - H. Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019 (the boundary
      term ``with_boundary`` adds, computed by MONAI's ``BoundaryLoss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (w_dice, w_cldice): what the paper writes, and what the reference code effectively computes
# (0.8 Dice + 0.2 x [0.8 Dice + 0.2 clDice] = 0.96 Dice + 0.04 clDice).
PRESETS = {"paper": (0.2, 0.8), "reference_code": (0.96, 0.04)}
DICE_TASKS = ("FAZ", "Capillary")
CLDICE_TASKS = ("RV", "Artery", "Vein")
# >= the largest vessel radius in px at OCTA-500 label resolution (RV diameter up to 8.5-10 px)
DEFAULT_SKELETON_ITERS = 10


REDUCTIONS = ("mean", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """``(B,)`` per-sample losses -> their mean (a scalar), or themselves for ``reduction="none"``."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return per_sample.mean() if reduction == "mean" else per_sample


def _probabilities(pred: torch.Tensor, target: torch.Tensor, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.ndim != 4 or pred.shape[1] != 1:
        raise ValueError(f"predictions must be (B, 1, H, W), got {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(f"target shape {tuple(target.shape)} differs from prediction shape {tuple(pred.shape)}")
    prob = torch.sigmoid(pred) if from_logits else pred
    return prob, target.to(prob.dtype)


def dice_loss(
    pred: torch.Tensor, target: torch.Tensor, from_logits: bool = True, smooth: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Soft Dice loss, per sample, averaged over the batch (``reduction="none"``: one per sample).

    .. math:: 1 - \\frac{2 \\sum p g + s}{\\sum p + \\sum g + s}

    Args:
        pred: ``(B, 1, H, W)`` logits (or probabilities with ``from_logits=False``).
        target: ``(B, 1, H, W)`` in {0, 1}.
        smooth: ``s``; keeps an empty target with an empty prediction at loss 0.
        reduction: "mean" or "none".

    Returns:
        scalar tensor, or ``(B,)`` for ``reduction="none"``.
    """
    prob, target = _probabilities(pred, target, from_logits)
    inter = (prob * target).flatten(1).sum(1)
    total = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return _reduce(1 - (2 * inter + smooth) / (total + smooth), reduction)


def soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: min-pooling over a plus-shaped 3 x 3 neighbourhood. ``(B, C, H, W)`` -> same."""
    return torch.minimum(-F.max_pool2d(-x, (3, 1), 1, (1, 0)), -F.max_pool2d(-x, (1, 3), 1, (0, 1)))


def soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: max-pooling over a 3 x 3 square. ``(B, C, H, W)`` -> same."""
    return F.max_pool2d(x, 3, 1, 1)


def soft_open(x: torch.Tensor) -> torch.Tensor:
    """Soft morphological opening (erosion, then dilation)."""
    return soft_dilate(soft_erode(x))


def soft_skeleton(x: torch.Tensor, iters: int = DEFAULT_SKELETON_ITERS) -> torch.Tensor:
    """Soft skeleton of Shit et al. (CVPR 2021): what opening removes, accumulated over erosions.

    Args:
        x: ``(B, C, H, W)`` probabilities in [0, 1].
        iters: erosion steps; must reach the thickest structure's radius in px, or its centre
            line is never found.

    Returns:
        ``(B, C, H, W)`` soft skeleton in [0, 1], differentiable in ``x``.
    """
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    skel = F.relu(x - soft_open(x))
    for _ in range(iters):
        x = soft_erode(x)
        delta = F.relu(x - soft_open(x))
        skel = skel + F.relu(delta - skel * delta)
    return skel


def soft_cldice_loss(
    pred: torch.Tensor, target: torch.Tensor, iters: int = DEFAULT_SKELETON_ITERS, from_logits: bool = True, smooth: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Soft clDice loss: 1 - harmonic mean of topology precision and sensitivity, per sample.

    Topology precision: the fraction of the predicted soft skeleton inside the target; topology
    sensitivity: the fraction of the target's soft skeleton inside the prediction.

    Args:
        pred: ``(B, 1, H, W)`` logits (or probabilities).
        target: ``(B, 1, H, W)`` in {0, 1}.
        iters: soft-skeleton iterations (>= the largest vessel radius in px).
        reduction: "mean" or "none".

    Returns:
        scalar tensor, or ``(B,)`` for ``reduction="none"``.
    """
    prob, target = _probabilities(pred, target, from_logits)
    skel_pred, skel_true = soft_skeleton(prob, iters), soft_skeleton(target, iters)
    tprec = ((skel_pred * target).flatten(1).sum(1) + smooth) / (skel_pred.flatten(1).sum(1) + smooth)
    tsens = ((skel_true * prob).flatten(1).sum(1) + smooth) / (skel_true.flatten(1).sum(1) + smooth)
    return _reduce(1 - 2 * tprec * tsens / (tprec + tsens), reduction)


def dice_cldice_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    w_dice: float = 0.2,
    w_cldice: float = 0.8,
    iters: int = DEFAULT_SKELETON_ITERS,
    from_logits: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """The vessel loss written explicitly: ``w_dice * Dice + w_cldice * clDice'`` (per sample with
    ``reduction="none"``).

    The paper's weights are 0.2 / 0.8 (the default); the reference code in effect used 0.96 / 0.04
    (``PRESETS["reference_code"]``).
    """
    return (w_dice * dice_loss(pred, target, from_logits, reduction=reduction)
            + w_cldice * soft_cldice_loss(pred, target, iters, from_logits, reduction=reduction))


class DiceLoss(nn.Module):
    """Module form of ``dice_loss``."""

    def __init__(self, from_logits: bool = True, smooth: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        _reduce(torch.zeros(1), reduction)  # checked here, not at the first batch
        self.from_logits, self.smooth, self.reduction = from_logits, smooth, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(pred, target, self.from_logits, self.smooth, self.reduction)


class DiceClDiceLoss(nn.Module):
    """Module form of ``dice_cldice_loss``; ``preset`` "paper" (0.2 / 0.8) or "reference_code" (0.96 / 0.04)."""

    def __init__(
        self,
        w_dice: float | None = None,
        w_cldice: float | None = None,
        preset: str = "paper",
        iters: int = DEFAULT_SKELETON_ITERS,
        from_logits: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        _reduce(torch.zeros(1), reduction)
        self.reduction = reduction
        if preset not in PRESETS:
            raise ValueError(f"unknown loss preset {preset!r}; expected one of {tuple(PRESETS)}")
        default_dice, default_cl = PRESETS[preset]
        self.w_dice = default_dice if w_dice is None else w_dice
        self.w_cldice = default_cl if w_cldice is None else w_cldice
        self.iters, self.from_logits = iters, from_logits

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_cldice_loss(pred, target, self.w_dice, self.w_cldice, self.iters, self.from_logits, self.reduction)

    def extra_repr(self) -> str:
        return f"w_dice={self.w_dice}, w_cldice={self.w_cldice}, iters={self.iters}"


class WithBoundary(nn.Module):
    """A loss plus ``weight`` times the boundary loss (Kervadec et al., MIDL 2019), as MONAI computes it.

    The boundary term is the mean over pixels of the predicted probability times the label's signed
    distance map (0 on the label's border, negative inside, the distance in px outside): a mask drawn a
    pixel too wide pays for every pixel of its seam, one far off pays by its distance, which region
    losses such as Dice and clDice, blind to where an error lies, do not.

    Args:
        base: the task's loss (``loss_for_task``), with the same ``reduction``.
        weight: of the boundary term, above 0.
        reduction: "mean" or "none" (one loss per sample).
    """

    def __init__(self, base: nn.Module, weight: float, reduction: str = "mean") -> None:
        super().__init__()
        from monai.losses import BoundaryLoss

        if not weight > 0:
            raise ValueError(f"the boundary term's weight must be above 0, got {weight}")
        _reduce(torch.zeros(1), reduction)
        self.base, self.weight, self.reduction = base, float(weight), reduction
        self.boundary = BoundaryLoss(sigmoid=True, reduction="none")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        per_sample = self.boundary(pred.float(), target.float()).reshape(pred.shape[0])
        return self.base(pred, target) + self.weight * _reduce(per_sample, self.reduction)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"


def loss_for_task(
    task: str, preset: str = "paper", iters: int = DEFAULT_SKELETON_ITERS, from_logits: bool = True, reduction: str = "mean",
    boundary: float = 0.0,
) -> nn.Module:
    """The SAM-OCTA loss of a task: Dice for FAZ and Capillary, Dice + clDice for RV, Artery and Vein
    (``reduction="none"``: one loss per sample); with ``boundary`` above 0, plus that times the boundary
    loss (``WithBoundary``)."""
    if task in DICE_TASKS:
        base: nn.Module = DiceLoss(from_logits, reduction=reduction)
    elif task in CLDICE_TASKS:
        base = DiceClDiceLoss(preset=preset, iters=iters, from_logits=from_logits, reduction=reduction)
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {DICE_TASKS + CLDICE_TASKS}")
    if boundary:
        if not from_logits:
            raise ValueError("the boundary term takes logits (from_logits=True)")
        return WithBoundary(base, boundary, reduction)
    return base
