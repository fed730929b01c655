"""Pretraining the tiny SAM on generic shapes, so that the book has a promptable model to adapt.

No official SAM weights reach a machine without internet, so the project teaches its own small
SAM promptable segmentation the way SAM learned it: random shapes (discs, ellipses, polygons, thin
and thick curves, rings) occluding each other on textured, noisy backgrounds - never OCTA - with
random point prompts; the loss is taken on the best of the three multimask outputs plus the
single-mask output, and the IoU head learns the masks' true IoU.

The clicks also enter as a signed Gaussian map through SAM's dense mask-prompt input (see
``samocta.model.promptable.click_map``): from random initialisation, point tokens alone left the
model stuck on empty masks for minutes, while the map got it learning at once.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.draw import disk, ellipse, polygon

from samocta.core.errors import SamOctaError
from samocta.core.files import append_line, atomic_torch_save, atomic_write_text, save_safetensors, sha256_file
from samocta.core.options import MAX_SEED, check_fields, option
from samocta.synth.render import stamp_segments

SHAPES = ("disc", "ellipse", "polygon", "thin_curve", "thick_curve", "ring")


def _texture(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    t = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return t / (t.std() + 1e-6)


def _curve(size: int, rng: np.random.Generator, radius: float) -> np.ndarray:
    """A smooth random curve (a quadratic Bezier chain) as a mask."""
    k = int(rng.integers(3, 6))
    ctrl = rng.uniform(0.05 * size, 0.95 * size, (k, 2))
    t = np.linspace(0, 1, 80)[:, None]
    pts = []
    for a, b, c in zip(ctrl[:-2], ctrl[1:-1], ctrl[2:]):
        p0, p2 = (a + b) / 2, (b + c) / 2
        pts.append((1 - t) ** 2 * p0 + 2 * (1 - t) * t * b + t**2 * p2)
    pts = np.concatenate(pts)
    n = len(pts) - 1
    cover = stamp_segments((size, size), pts[:-1], pts[1:], np.full(n, radius), np.ones(n), 1)
    return cover >= 0.5


def random_shape(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One generic shape as a bool ``(size, size)`` mask."""
    m = np.zeros((size, size), bool)
    c = rng.uniform(0.1 * size, 0.9 * size, 2)
    if kind == "disc":
        m[disk(c, rng.uniform(0.04, 0.16) * size, shape=m.shape)] = True
    elif kind == "ellipse":
        r = rng.uniform(0.03, 0.2, 2) * size
        m[ellipse(c[0], c[1], r[0], r[1], shape=m.shape, rotation=rng.uniform(0, np.pi))] = True
    elif kind == "polygon":
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.04, 0.18) * size * rng.uniform(0.5, 1.0, n)
        m[polygon(c[0] + rad * np.sin(ang), c[1] + rad * np.cos(ang), m.shape)] = True
    elif kind == "ring":
        r = rng.uniform(0.06, 0.18) * size
        m[disk(c, r, shape=m.shape)] = True
        m[disk(c, r * rng.uniform(0.45, 0.8), shape=m.shape)] = False
    elif kind == "thin_curve":
        m = _curve(size, rng, rng.uniform(0.6, 1.6))
    else:
        m = _curve(size, rng, rng.uniform(2.0, 6.0))
    return m


def shapes_scene(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """A textured noisy scene of 3-8 occluding shapes.

    Returns:
        image uint8 ``(size, size, 3)`` and the visible mask of every shape (later shapes occlude
        earlier ones; shapes left with fewer than 16 visible pixels are dropped).
    """
    base = 0.35 + 0.15 * _texture((size, size), rng, rng.uniform(4, 16)) + rng.uniform(-0.1, 0.1)
    image = base + 0.05 * _texture((size, size), rng, 0.7)
    owner = np.full((size, size), -1, np.int32)
    fine = _texture((size, size), rng, rng.uniform(0.7, 3))  # one object texture, shifted per shape
    n = int(rng.integers(3, 9))
    for i in range(n):
        mask = random_shape(SHAPES[int(rng.integers(len(SHAPES)))], size, rng)
        level = rng.uniform(0.0, 1.0)
        if abs(level - base[mask].mean() if mask.any() else 1) < 0.15:
            level = (level + 0.5) % 1.0  # keep some contrast against the background
        shift = rng.integers(0, size, 2)
        inner = level + rng.uniform(0.02, 0.12) * np.roll(fine, tuple(shift), axis=(0, 1))
        image = np.where(mask, inner, image)
        owner[mask] = i
    image = ndimage.gaussian_filter(image, rng.uniform(0.3, 1.0))
    speckle = rng.gamma(4.0, 0.25, image.shape).astype(np.float32)
    image = image * (1 - 0.3 + 0.3 * speckle) + rng.uniform(0.02, 0.08) * rng.standard_normal(image.shape)
    gains = rng.uniform(0.7, 1.3, 3)
    offsets = rng.uniform(-0.1, 0.1, 3)
    rgb = np.clip(image[..., None] * gains + offsets, 0, 1)
    visible = [owner == i for i in range(n)]
    return (rgb * 255).astype(np.uint8), [v for v in visible if v.sum() >= 16]


def sample_points(target: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random positives inside ``target`` and negatives outside it (half of them close to it).

    Returns:
        coords float32 ``(n_pos + n_neg, 2)`` as ``(x, y)`` pixel centres at ``i + 0.5``, labels int64.
    """
    inside = np.flatnonzero(target)
    near = ndimage.binary_dilation(target, iterations=6) & ~target
    outside = np.flatnonzero(near) if (near.any() and rng.random() < 0.5) else np.flatnonzero(~target)
    pos = rng.choice(inside, n_pos, replace=inside.size < n_pos)
    neg = rng.choice(outside, n_neg, replace=outside.size < n_neg) if outside.size else np.zeros(0, np.int64)
    flat = np.concatenate([pos, neg])
    rows, cols = np.divmod(flat, target.shape[1])
    coords = np.stack([cols + 0.5, rows + 0.5], 1).astype(np.float32)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
    return coords, labels


@dataclass
class PretrainConfig:
    """The deterministic pretraining recipe; the ``pretrain-tiny`` flags are generated from these fields."""

    steps: int = option(12000, "optimiser steps in all (the shipped weights: 12,000); a resume continues to this", minimum=1)
    images_per_step: int = option(8, "shape scenes per step", minimum=1)
    prompts_per_image: int = option(2, "prompts drawn on each scene", minimum=1)
    lr: float = option(4e-4, "AdamW peak learning rate (cosine decay to a tenth)", above=0, maximum=1)
    weight_decay: float = option(0.05, "AdamW weight decay", minimum=0)
    warmup: int = option(250, "steps of linear warm-up", minimum=0)
    seed: int = option(0, "seed of the scenes, prompts and initialisation", minimum=0, maximum=MAX_SEED)
    eval_every: int = option(500, "steps between held-out mIoU points of the curve", minimum=1)
    eval_shapes: int = option(100, "held-out scenes per curve point", minimum=1)
    checkpoint_every: int = option(250, "steps between resumable checkpoints", minimum=1)
    final_eval_shapes: int = option(200, "held-out scenes of the final zero-shot figures", minimum=1)
    threads: int = option(0, "torch CPU threads (0: torch's default)", minimum=0)

    def __post_init__(self) -> None:
        check_fields(self)


def _batch(size: int, cfg: PretrainConfig, rng: np.random.Generator):
    images, coords, labels, targets = [], [], [], []
    for _ in range(cfg.images_per_step):
        image, masks = shapes_scene(size, rng)
        while not masks:
            image, masks = shapes_scene(size, rng)
        images.append(image)
        for _ in range(cfg.prompts_per_image):
            target = masks[int(rng.integers(len(masks)))]
            n_pos = int(rng.choice([1, 1, 2, 3]))
            n_neg = int(rng.choice([0, 0, 1, 2])) if n_pos > 1 else int(rng.choice([0, 0, 0, 1]))
            c, l = sample_points(target, n_pos, n_neg, rng)
            pad = 5 - len(l)
            coords.append(np.concatenate([c, np.zeros((pad, 2), np.float32)]))
            labels.append(np.concatenate([l, -np.ones(pad, np.int64)]))
            targets.append(target)
    return np.stack(images), np.stack(coords), np.stack(labels), np.stack(targets)


def _mask_losses(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-mask BCE + Dice ``(P, K)`` and true IoU ``(P, K)`` of low-res logits ``(P, K, h, w)``."""
    t = target.unsqueeze(1).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").flatten(2).mean(2)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * t).flatten(2).sum(2) + 1) / (p.flatten(2).sum(2) + t.flatten(2).sum(2) + 1)
    hard = (logits > 0).float()
    inter = (hard * t).flatten(2).sum(2)
    union = ((hard + t) > 0).float().flatten(2).sum(2)
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return bce + dice, iou


def train_step(model, batch, cfg: PretrainConfig) -> torch.Tensor:
    """Loss of one batch: best of the three multimask outputs + the single-mask output + IoU head."""
    images, coords, labels, targets = batch
    emb = model.embed(images)
    feats = emb.features.repeat_interleave(cfg.prompts_per_image, dim=0)
    dev = model.device
    # the recipe's prompts are padded to five points with "not a point" tokens, as the shipped
    # weights were trained; decode_candidates keeps them (decode would drop them)
    low, iou_pred = model.decode_candidates(
        feats, torch.as_tensor(coords, device=dev), torch.as_tensor(labels, device=dev), emb.original_size
    )  # (P, 4, g, g), (P, 4)
    t = torch.as_tensor(targets, device=dev, dtype=torch.float32).unsqueeze(1)
    t = F.adaptive_avg_pool2d(t, low.shape[-2:]).squeeze(1)  # area-downsampled soft target
    per_mask, true_iou = _mask_losses(low, t)
    loss = per_mask[:, 1:].min(dim=1).values.mean() + per_mask[:, 0].mean()
    return loss + F.mse_loss(iou_pred, true_iou.detach())


@torch.no_grad()
def zero_shot_miou(model, n: int = 200, seed: int = 10_000, n_pos: int = 1, n_neg: int = 0) -> float:
    """Mean IoU on ``n`` held-out shape scenes (seeds never used in training), one target each.

    One positive point: the most confident of the three masks (SAM's own rule for an ambiguous
    single click); more points: the single-mask output.
    """
    model.eval()
    size = model.img_size
    ious = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        image, masks = shapes_scene(size, rng)
        if not masks:
            continue
        target = masks[int(rng.integers(len(masks)))]
        coords, labels = sample_points(target, n_pos, n_neg, rng)
        out = model(image[None], coords[None], labels[None], mask_rule="most_confident" if n_pos + n_neg == 1 else "single")
        pred = out.masks(0.5)[0]
        union = (pred | target).sum()
        ious.append((pred & target).sum() / union if union else 1.0)
    return float(np.mean(ious))


def _record_stage(path: Path, start: int, steps: int) -> list[dict[str, int]]:
    """Keep the list of schedules a run was trained under, and warn when a resume changes it.

    Resuming with another ``--steps`` recomputes the cosine schedule for the new length, so the
    learning rate jumps back up (a warm restart): the result is then not that of a fresh run with
    the new ``--steps``, and ``stages.json`` (and the summary) say how it was made.
    """
    import warnings

    from samocta.core.files import read_json

    stages = read_json(path, "record of pretraining stages", "delete the run folder to start afresh") if start and path.exists() else []
    if not isinstance(stages, list) or not all(isinstance(s, dict) and isinstance(s.get("schedule_steps"), int) for s in stages):
        raise SamOctaError(f"{path}: not a record of pretraining stages; delete the run folder to start afresh")
    if stages and stages[-1]["schedule_steps"] != steps:
        warnings.warn(
            f"resuming at step {start} a run scheduled for {stages[-1]['schedule_steps']} steps with --steps {steps}: "
            f"the cosine schedule restarts for {steps} steps, so the result differs from a fresh {steps}-step run "
            f"(recorded in {path.name})",
            stacklevel=3,
        )
    if not stages or stages[-1]["schedule_steps"] != steps:
        stages.append({"from_step": start, "schedule_steps": steps})
        atomic_write_text(path, json.dumps(stages, indent=1) + "\n")
    return stages


def pretrain(out: str | os.PathLike, cfg: PretrainConfig, device: str = "cpu", progress: bool = True) -> dict:
    """Run (or resume) the recipe; writes ``last.pt`` (resumable), ``curve.csv`` and ``sam_tiny.safetensors``.

    Returns:
        a summary dict (steps, seconds, final zero-shot mIoU with 1 point and with 2 + 1 points).
    """
    from tqdm.auto import tqdm

    from samocta.model.build import TINY_CONFIG, build_sam, resolve_device
    from samocta.model.promptable import PromptableSam

    device = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # the recipe's size: the shipped weights were made at 256 px, whatever size the tiny SAM runs at now
    model = PromptableSam(build_sam("tiny", pretrained=False, img_size=TINY_CONFIG["pretrain_img_size"])).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        progress_ = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start, elapsed = 0, 0.0
    last = out / "last.pt"
    if last.exists():
        try:
            state = torch.load(last, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, elapsed = int(state["step"]), float(state["elapsed"])
        except Exception as exc:  # torn, foreign or pickled-code files alike: one line naming the file
            raise SamOctaError(f"{last}: unreadable pretraining checkpoint ({type(exc).__name__}: {str(exc)[:150]}); "
                               "delete it to start this pretraining afresh, or restore it from a copy") from None
    curve_path = out / "curve.csv"
    if start == 0:
        atomic_write_text(curve_path, "step,seconds,loss,miou_1pos\n")
    stages = _record_stage(out / "stages.json", start, cfg.steps)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=1) + "\n")
    size = model.img_size
    t0 = time.perf_counter() - elapsed
    running = None
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="pretrain tiny SAM")
    for step in bar:
        model.train()
        batch = _batch(size, cfg, np.random.default_rng([cfg.seed, step]))
        loss = train_step(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            miou = zero_shot_miou(model, cfg.eval_shapes, seed=20_000)
            append_line(curve_path, f"{done},{round(time.perf_counter() - t0, 1)},{round(running, 4)},{round(miou, 4)}")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            atomic_torch_save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "step": done, "elapsed": time.perf_counter() - t0},
                last,
            )
    export_weights(model.sam, out / "sam_tiny.safetensors")
    summary = {
        "steps": cfg.steps,
        "stages": stages,
        "seconds": round(time.perf_counter() - t0, 1),
        "miou_1pos": zero_shot_miou(model, cfg.final_eval_shapes, n_pos=1, n_neg=0),
        "miou_2pos_1neg": zero_shot_miou(model, cfg.final_eval_shapes, n_pos=2, n_neg=1),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def export_weights(sam: torch.nn.Module, path: str | os.PathLike) -> str:
    """Save a SAM state dict as fp16 safetensors; returns its SHA-256."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in sam.state_dict().items()}
    save_safetensors(state, path, metadata={"model_type": "tiny", "format": "segment-anything Sam state dict, fp16"})
    return sha256_file(path)
