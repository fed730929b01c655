"""Fine-tuning one fold: LoRA (optionally + decoder), AdamW, warm-up then decay, validation, checkpoints, resume.

A run folder holds, per fold::

    config.json              the TrainConfig
    split.json               the subject ids of train / val / test
    metrics.csv              one row per finished epoch
    adapter_best.safetensors the adapter with the best validation Dice so far
    adapter_last.safetensors the adapter after the last finished epoch
    last.pt                  everything needed to resume: adapter, optimiser, scheduler, RNG, history

Every file is written atomically; ``last.pt`` is written last, so a run killed at any moment
resumes from its last finished epoch and, because every random choice is seeded by
(seed, epoch, subject), reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from samocta.errors import SamOctaError
from samocta.files import atomic_torch_save, atomic_write_text

HISTORY_FIELDS = ("epoch", "train_loss", "val_dice", "val_jaccard", "val_cldice", "lr", "seconds")


class TrainingError(SamOctaError, RuntimeError):
    """Training cannot go on (a non-finite loss, or a run folder made with another config)."""


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run (saved with it as config.json).

    Data: ``data`` (dataset root), ``fov``, ``task``; split ``"standard"`` (IPN-V2) or ``"kfold"``
    with ``k``, ``fold``, ``split_seed``. Model: ``model`` type, ``checkpoint`` (a path,
    "download" for the official file, "random" for random weights on purpose; None: the shipped
    tiny weights, an error for the official types), LoRA ``rank``/``alpha``/``lora_dropout``,
    ``train_decoder``. Optimisation: ``epochs``, ``batch_size``, AdamW ``lr`` and
    ``weight_decay``, a linear warm-up from ``warmup_start_lr`` over ``warmup_epochs`` (the paper:
    1e-5 up to 1e-3), then ``lr_decay`` per epoch down to ``min_lr``. Prompts: ``prompt_mode``
    ("global", "local", "none"), ``n_pos``/``n_neg`` (None: the paper's counts),
    ``no_prompt_fraction`` (train that share of samples with no points, for a prompt-free model).
    ``augment``: "paper", "reference_code" or None. ``loss_preset``: "paper" (0.2 Dice + 0.8
    clDice) or "reference_code" (0.96 / 0.04). ``mask_rule``: which decoder output is the mask
    in training, validation and every later use: "most_confident" (the paper: the most confident
    of SAM's three masks) or "single" (the reference code: the single-mask output); see
    ``samocta.model.MASK_RULES``. ``threshold`` on probabilities for validation. Speed and memory levers,
    each "auto" (on with CUDA), "on" or "off": ``amp`` (bf16 where supported, else fp16 with a
    grad scaler), ``grad_checkpointing`` (per encoder block), ``sdpa`` (fused attention),
    ``half_frozen`` (the encoder's frozen weights stored in the autocast dtype; LoRA weights and
    optimiser state stay fp32); ``compile``: ``torch.compile`` the encoder. ``device``: "auto",
    "cpu", "cuda".
    """

    data: str = ""
    fov: str = "3M"
    task: str = "FAZ"
    split: str = "standard"
    k: int = 10
    fold: int = 0
    split_seed: int = 0
    model: str = "tiny"
    checkpoint: str | None = None
    rank: int = 4
    alpha: float | None = None
    lora_dropout: float = 0.0
    train_decoder: bool = False
    epochs: int = 10
    batch_size: int = 4
    lr: float = 1e-3
    warmup_start_lr: float = 1e-5
    warmup_epochs: float = 1.0
    lr_decay: float = 0.97
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    prompt_mode: str = "global"
    n_pos: int | None = None
    n_neg: int | None = None
    no_prompt_fraction: float = 0.0
    augment: str | None = "paper"
    loss_preset: str = "paper"
    mask_rule: str = "most_confident"
    threshold: float = 0.5
    seed: int = 0
    amp: str = "auto"
    grad_checkpointing: str = "auto"
    sdpa: str = "auto"
    half_frozen: str = "auto"
    compile: bool = False
    device: str = "auto"
    out: str = "runs/run"
    max_train: int | None = None

    def __post_init__(self) -> None:
        from samocta.model.promptable import MASK_RULES

        if self.mask_rule not in MASK_RULES:
            raise TrainingError(f"mask_rule (--mask-rule) must be one of {MASK_RULES}, got {self.mask_rule!r}")
        if self.model != "tiny" and not self.checkpoint:
            from samocta.model.build import resolve_checkpoint

            resolve_checkpoint(self.model, None)  # raises, saying how to get the official weights

    def to_json(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        raw = json.loads(Path(path).read_text())
        if "mask_rule" not in raw and "multimask" in raw:
            # configs written before the mask rule had a name: multimask=True was the paper's rule
            raw["mask_rule"] = "most_confident" if raw["multimask"] else "single"
        if raw.get("model", "tiny") != "tiny" and not raw.get("checkpoint"):
            raw["checkpoint"] = "random"  # what no checkpoint meant for the official types before it had to be said
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named set of choices: "paper" (the defaults) or "reference_code" (what the public
        SAM-OCTA code does in effect: its loss weights, augmentation and single-mask output)."""
        choices = {
            "paper": {},
            "reference_code": {"loss_preset": "reference_code", "augment": "reference_code", "mask_rule": "single"},
        }
        if name not in choices:
            raise TrainingError(f"unknown preset {name!r}; expected one of {tuple(choices)}")
        return cls(**{**choices[name], **overrides})

    def prompt_spec(self):
        from samocta.prompts import PromptSpec

        spec = PromptSpec.paper(self.task, self.prompt_mode)
        if self.n_pos is not None or self.n_neg is not None:
            spec = PromptSpec(
                self.prompt_mode, spec.n_pos if self.n_pos is None else self.n_pos, spec.n_neg if self.n_neg is None else self.n_neg, task=self.task
            )
        return spec

    def fold_dir(self) -> Path:
        return Path(self.out) / (f"fold{self.fold}" if self.split == "kfold" else "standard")


@dataclass
class FoldResult:
    """What ``train_fold`` returns."""

    run_dir: Path
    best_epoch: int
    best_val_dice: float
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_split(config: TrainConfig, ids: list[int]):
    """The config's split restricted to the ids present."""
    from samocta.data import kfold_split, standard_split

    if config.split == "standard":
        split = standard_split(config.fov, available=ids)
    elif config.split == "kfold":
        split = kfold_split(ids, config.k, config.split_seed)[config.fold]
    else:
        raise TrainingError(f"unknown split {config.split!r}; expected 'standard' or 'kfold'")
    if not split.train or not split.val:
        raise TrainingError(f"split {split.name} leaves no training or validation subjects among {len(ids)} ids")
    return split


def build_model(config: TrainConfig, device: torch.device):
    """The LoRA model a config describes: weights from its checkpoint (whose SHA-256 the adapters
    record), its LoRA settings, mask rule and task."""
    from samocta.model import LoRASam, build_sam
    from samocta.model.build import resolve_checkpoint

    weights, sha = resolve_checkpoint(config.model, config.checkpoint)
    sam = build_sam(config.model, weights, pretrained=weights is not None)
    model = LoRASam(sam, config.rank, config.alpha, config.lora_dropout, config.train_decoder, base_sha256=sha,
                    mask_rule=config.mask_rule, task=config.task)
    return model.to(device)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``lr`` at an optimiser step: linear warm-up from ``warmup_start_lr``, then per-epoch decay."""
    warm = config.warmup_epochs * steps_per_epoch
    start = config.warmup_start_lr / config.lr
    if step < warm:
        return start + (1 - start) * step / warm
    epochs_after = math.floor((step - warm) / steps_per_epoch)
    return max(config.lr_decay**epochs_after, config.min_lr / config.lr)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _validate(model, index, ids: list[int], config: TrainConfig) -> dict[str, float]:
    """Validation scores, computed by ``samocta.evaluate.evaluate``: the same prompts, decoding and
    threshold as ``evaluate_run(run, part="val")`` in the run's prompt mode, so the two agree."""
    from samocta.evaluate import evaluate

    results = evaluate(model, index, ids, config.task, {config.prompt_mode: config.prompt_spec()}, seed=config.seed,
                       threshold=config.threshold, progress=False)
    return {k: float(results[k].mean()) for k in ("dice", "jaccard", "cldice")}


def _history_csv(path: Path, history: list[dict[str, float]]) -> None:
    lines = [",".join(HISTORY_FIELDS)]
    for row in history:
        lines.append(",".join(str(row[k]) for k in HISTORY_FIELDS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def train_fold(config: TrainConfig, resume: bool = False, progress: bool = True) -> FoldResult:
    """Train one fold (or the standard split) as ``config`` says; resume it if asked.

    Raises:
        TrainingError: a non-finite loss (the last good checkpoint is kept), or ``resume`` into a
            folder whose config differs.
    """
    from tqdm.auto import tqdm

    from samocta.data import OCTA500, SegmentationDataset, collate_batch
    from samocta.losses import loss_for_task
    from samocta.prompts import PromptSpec

    device = resolve_device(config.device)
    run_dir = config.fold_dir()
    last = run_dir / "last.pt"
    if (run_dir / "config.json").exists() and last.exists():
        if not resume:
            raise TrainingError(f"{run_dir} already holds a run; pass resume=True (--resume) to continue it, or choose another --out")
        saved = TrainConfig.from_json(run_dir / "config.json")
        if asdict(saved) != asdict(config):
            diff = {k: (v, asdict(config)[k]) for k, v in asdict(saved).items() if asdict(config)[k] != v}
            raise TrainingError(f"{run_dir} was made with another config: {diff}")
    run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    index = OCTA500(config.data, config.fov)
    split = make_split(config, index.ids)
    train_ids = split.train[: config.max_train] if config.max_train else split.train
    config.to_json(run_dir / "config.json")
    split.to_json(run_dir / "split.json")

    spec = config.prompt_spec()
    train_ds = SegmentationDataset(index, train_ids, config.task, prompt_fn=spec, augment=config.augment or False, seed=config.seed)
    model = build_model(config, device)
    criterion = loss_for_task(config.task, preset=config.loss_preset)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_ds) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(config, s, steps_per_epoch))
    from samocta.model.speed import autocast_dtype, enable_checkpointing, enable_half_frozen, enable_sdpa

    def lever(value: str) -> bool:
        return value == "on" or (value == "auto" and device.type == "cuda")

    use_amp = lever(config.amp)
    use_half_frozen = lever(config.half_frozen)
    amp_dtype = autocast_dtype(device)
    # fp16 activations need loss scaling, whether AMP or half-precision weights put them there
    scaler = torch.amp.GradScaler(device.type, enabled=(use_amp or use_half_frozen) and amp_dtype == torch.float16)
    if lever(config.grad_checkpointing):
        enable_checkpointing(model)
    if lever(config.sdpa):
        enable_sdpa(model)
    if use_half_frozen:
        enable_half_frozen(model, amp_dtype)
    if config.compile:
        model.sam.image_encoder = torch.compile(model.sam.image_encoder)

    start_epoch, history, best = 0, [], (-1.0, -1)
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        params = dict(model.sam.named_parameters())
        with torch.no_grad():
            for name, value in state["adapter"].items():
                params[name].copy_(value)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, history = int(state["epoch"]), [dict(r) for r in json.loads(state["history"])]
        best = (float(state["best_dice"]), int(state["best_epoch"]))

    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        train_ds.set_epoch(epoch)
        model.train()
        rng = np.random.default_rng([config.seed, epoch, 0xBA7C4])
        losses = []
        batches = _batches(len(train_ds), config.batch_size, rng)
        bar = tqdm(batches, desc=f"{config.task} {split.name} epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False)
        for idx in bar:
            items = [train_ds[int(i)] for i in idx]
            if config.no_prompt_fraction > 0:
                for item in items:
                    if rng.random() < config.no_prompt_fraction:
                        item["prompt"] = PromptSpec("none")(item["mask"], rng)
                        item["target"] = item["mask"]
            batch = collate_batch(items)
            target = torch.as_tensor(batch["target"], device=device).float().unsqueeze(1)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                out = model(batch["image"], batch["coords"], batch["point_labels"])
            loss = criterion(out.logits.float(), target)
            if not torch.isfinite(loss):
                kept = f"{last} (after epoch {history[-1]['epoch']}) is kept" if history else "no checkpoint was written yet"
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) in epoch {epoch + 1} on subjects {batch['id']}; the last good "
                    f"checkpoint {kept}. Lower the learning rate or check these subjects."
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        val = _validate(model, index, split.val, config)
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "val_dice": val["dice"],
            "val_jaccard": val["jaccard"],
            "val_cldice": val["cldice"],
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        history.append(row)
        if progress:
            print(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}, val Dice {row['val_dice']:.4f}", flush=True)
        if val["dice"] > best[0]:
            best = (val["dice"], epoch + 1)
            model.save_adapter(run_dir / "adapter_best.safetensors")
        model.save_adapter(run_dir / "adapter_last.safetensors")
        _history_csv(run_dir / "metrics.csv", history)
        atomic_torch_save(
            {
                "adapter": model.adapter_state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "epoch": epoch + 1,
                "history": json.dumps(history),
                "best_dice": best[0],
                "best_epoch": best[1],
            },
            last,
        )
    return FoldResult(run_dir, best[1], best[0], history)


def read_history(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The per-epoch rows of a fold's metrics.csv."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
