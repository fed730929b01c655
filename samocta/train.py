"""Fine-tuning one fold: LoRA (optionally + decoder), AdamW, warm-up then decay, validation, checkpoints, resume.

The files of a fold folder are listed in ``samocta.runs``. Every file is written atomically;
``last.pt`` is written last, so a run killed at any moment resumes from its last finished epoch
and, because every random choice is seeded by (seed, epoch, subject), reproduces the
uninterrupted run exactly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import typing
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from samocta import runs
from samocta.data.channels import PAPER
from samocta.data.octa500 import Fov, Task
from samocta.errors import SamOctaError
from samocta.files import atomic_torch_save, atomic_write_text
from samocta.model.build import ModelType, build_model, resolve_device
from samocta.model.promptable import MaskRule
from samocta.options import check_fields, flag_of, option
from samocta.prompts import Mode

if TYPE_CHECKING:
    from samocta.data import Dataset, Sample, SegmentationDataset, Split
    from samocta.model import LoRASam
    from samocta.model.speed import Precision
    from samocta.prompts import PromptSpec

HISTORY_FIELDS = ("epoch", "train_loss", "val_dice", "val_jaccard", "val_cldice", "val_dice_none", "lr", "seconds")
Lever = Literal["auto", "on", "off"]
SplitKind = Literal["standard", "kfold"]
Preset = Literal["paper", "reference_code"]
PRESETS: tuple[str, ...] = typing.get_args(Preset)
# the choices each preset makes; everything else keeps the dataclass default
PRESET_CHOICES = {
    "paper": {},
    "reference_code": {"loss_preset": "reference_code", "augment": "reference_code", "mask_rule": "single"},
}
# Salt of the per-epoch stream that orders batches and draws the no-prompt samples. The dataset's
# streams are keyed (seed, epoch, id_seed(subject)) for prompts and (seed, epoch, id_seed, 1) for
# augmentation; OCTA-500 ids are 10001-10500 and a folder dataset's stems hash to 2**62 and up, so
# this key (seed, epoch, 0xBA7C4 = 763844) coincides with no subject's but a stem "763844", and the
# batch order stays independent of every subject's draws.
# (Pretraining keys its batches (seed, step): a separate process with its own seed.)
BATCH_ORDER_SALT = 0xBA7C4


class TrainingError(SamOctaError, RuntimeError):
    """Training cannot go on (a non-finite loss, or a run folder made with another config)."""


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run, saved with it as ``config.json``.

    Each field's help text, allowed values and command-line flag are declared with it (``option``);
    the ``train`` command's flags are generated from them, and ``__post_init__`` checks every value,
    so the Python API and the command line refuse the same things with the same message.
    """

    data: str = option("", "dataset root: an OCTA-500 tree (either layout; the dataset folder or its parent) or a folder "
                           "dataset of your own (images/ with labels/<TASK>/ or label/; see 'Using your own data')")
    fov: Fov | None = option(None, "field of view of an OCTA-500 tree (none: the one it holds); a folder dataset has "
                                   "none: give its width with --fov-mm")
    fov_mm: float | None = option(None, "the scans' width in mm for a folder dataset whose dataset.json does not say it "
                                        "(none: unknown, measurements in mm are refused)", above=0, maximum=50)
    channels: str = option("auto", "what fills SAM's three input channels: auto (OCTA-500's three projections, a "
                                   "folder's own three or its one repeated), one projection name (repeated), or three "
                                   "names separated by commas (e.g. OPL_BM,ILM_OPL,FULL)")
    task: Task = option("FAZ", "segmentation task")
    split: SplitKind = option("standard", "standard: the IPN-V2 train/val/test split; kfold: fold --fold of --k folds")
    k: int = option(10, "number of folds of --split kfold", minimum=2)
    fold: int = option(0, "the fold to train, 0 .. k-1 (--split kfold)", minimum=0)
    split_seed: int = option(0, "seed of the k-fold shuffle", minimum=0)
    model: ModelType = option("tiny", "SAM type: the shipped tiny teaching SAM, or an official one")
    checkpoint: str | None = option(
        None, "base weights: a path, 'download' (the official file, SHA-256 checked) or 'random'; none: the shipped "
              "tiny SAM (the official types need one)")
    rank: int = option(4, "LoRA rank r (the paper: 4)", minimum=1, maximum=256)
    alpha: float | None = option(None, "LoRA alpha; the update is scaled by alpha / rank; none: alpha = rank", above=0)
    lora_dropout: float = option(0.0, "dropout on the LoRA input", minimum=0, maximum=0.9)
    train_decoder: bool = option(False, "train SAM's mask decoder too (SAM-OCTA: off)")
    epochs: int = option(10, "epochs to train (a finished run can be extended with --resume)", minimum=1)
    batch_size: int = option(4, "images per optimiser step", minimum=1, maximum=1024)
    lr: float = option(1e-3, "AdamW learning rate after warm-up (the paper: 1e-3)", above=0, maximum=1)
    warmup_start_lr: float = option(1e-5, "learning rate at the first step, rising linearly to --lr", above=0, maximum=1)
    warmup_epochs: float = option(1.0, "epochs of linear warm-up", minimum=0)
    lr_decay: float = option(0.97, "factor applied to the learning rate after each epoch past the warm-up", above=0, maximum=1)
    min_lr: float = option(1e-5, "floor of the decayed learning rate", minimum=0)
    weight_decay: float = option(1e-4, "AdamW weight decay", minimum=0)
    prompt_mode: Mode = option("global", "prompt points the model is trained with (none: SAM's padding point only)")
    n_pos: int | None = option(None, "positive points per component (global) or on the target (local); none: the paper's", minimum=0)
    n_neg: int | None = option(None, "negative points, likewise; none: the paper's", minimum=0)
    no_prompt_fraction: float = option(0.0, "share of training samples decoded with no points", minimum=0, maximum=1)
    augment: Preset | None = option("paper", "augmentation preset (none: no augmentation)")
    loss_preset: Preset = option("paper", "paper: 0.2 Dice + 0.8 clDice for vessels; reference_code: 0.96 / 0.04 as its code does")
    mask_rule: MaskRule = option(
        "most_confident", "most_confident: the most confident of SAM's three masks (the paper); single: the single-mask "
                          "output (the reference code)")
    threshold: float = option(0.5, "probability above which a pixel is foreground", above=0, maximum=0.999)
    seed: int = option(0, "seed of every random choice of the run", minimum=0)
    amp: Lever = option("auto", "mixed precision: bf16 from compute capability 8.0, fp16 with loss scaling below (auto: on with CUDA)")
    grad_checkpointing: Lever = option("auto", "activation checkpointing per encoder block (auto: on with CUDA)")
    sdpa: Lever = option("auto", "fused scaled-dot-product attention in the image encoder (auto: on with CUDA)")
    half_frozen: Lever = option("auto", "store the encoder's frozen weights in half precision; LoRA stays fp32 (auto: on with CUDA)")
    compile: bool = option(False, "torch.compile the image encoder")
    device: str = option("auto", "auto (CUDA when there is a GPU), cpu, cuda or cuda:N")
    out: str = option("runs/run", "run folder; each fold gets its own folder inside")
    max_train: int | None = option(None, "use at most this many training subjects; none: all", minimum=1)

    def __post_init__(self) -> None:
        check_fields(self)
        from samocta.data.channels import parse_channels

        parse_channels(self.channels)  # the spelling now; whether the data has them when the run opens it
        if self.split == "kfold" and self.fold >= self.k:
            raise TrainingError(f"fold (--fold) must be 0 .. {self.k - 1} with --k {self.k}; got {self.fold}")
        if self.model != "tiny" and not self.checkpoint:
            from samocta.model.build import resolve_checkpoint

            resolve_checkpoint(self.model, None)  # raises, saying how to get the official weights
        if self.no_prompt_fraction > 0 and not self.train_decoder:
            warnings.warn(
                "--no-prompt-fraction without --train-decoder: with the decoder frozen, LoRA alone barely learns to "
                "segment without prompts; add --train-decoder for one adapter that serves both", stacklevel=2)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the config, and the prompt recipe it implies, as JSON (atomically)."""
        atomic_write_text(path, json.dumps({**asdict(self), "prompts": self.prompt_spec().to_dict()}, indent=1) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        """Read a config written by ``to_json``, by this version or an earlier one."""
        raw = json.loads(Path(path).read_text())
        if "mask_rule" not in raw and "multimask" in raw:
            # configs written before the mask rule had a name: multimask=True was the paper's rule
            raw["mask_rule"] = "most_confident" if raw["multimask"] else "single"
        if raw.get("model", "tiny") != "tiny" and not raw.get("checkpoint"):
            raw["checkpoint"] = "random"  # what no checkpoint meant for the official types before it had to be said
        raw.setdefault("channels", ",".join(PAPER))  # runs made before the option filled them as the paper
        known = {f.name for f in fields(cls)}  # "prompts" is derived, not read back
        return cls(**{k: v for k, v in raw.items() if k in known})

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named set of choices: "paper" (the defaults) or "reference_code" (what the public
        SAM-OCTA code does in effect: its loss weights, augmentation and single-mask output)."""
        if name not in PRESET_CHOICES:
            raise TrainingError(f"unknown preset {name!r}; expected one of {PRESETS}")
        return cls(**{**PRESET_CHOICES[name], **overrides})

    def prompt_spec(self) -> "PromptSpec":
        """The prompt recipe of the run: the paper's for its task and mode, with ``n_pos``/``n_neg`` if set."""
        from samocta.prompts import PromptSpec

        spec = PromptSpec.paper(self.task, self.prompt_mode)
        if self.n_pos is not None or self.n_neg is not None:
            spec = PromptSpec(
                self.prompt_mode, spec.n_pos if self.n_pos is None else self.n_pos, spec.n_neg if self.n_neg is None else self.n_neg,
                task=self.task,
            )
        return spec

    def fold_dir(self) -> Path:
        return Path(self.out) / runs.fold_name(self.split, self.fold)


@dataclass
class FoldResult:
    """What ``train_fold`` returns."""

    run_dir: Path
    best_epoch: int
    best_val_dice: float  # the selection score of the best epoch (see ``selection_score``)
    history: list[dict[str, float]] = field(default_factory=list)


def make_split(config: TrainConfig, index: "Dataset") -> "Split":
    """The config's split of the subjects present: the data's own (OCTA-500's standard split, a folder
    dataset's split folders or dataset.json) or fold ``fold`` of a seeded k-fold split."""
    from samocta.data import kfold_split

    if config.split == "kfold":
        split = kfold_split(index.ids, config.k, config.split_seed)[config.fold]
    else:
        split = index.own_split()
        if split is None:
            raise TrainingError(f"{index.where} comes with no split (no train/val/test folders, no split in its dataset.json): "
                                "train with --split kfold, or add one")
    if not split.train or not split.val:
        raise TrainingError(f"split {split.name} leaves no training or validation subjects among {len(index.ids)} ids")
    return split


def open_data(config: TrainConfig) -> tuple[TrainConfig, "Dataset"]:
    """The run's dataset, and the config with what the data decides filled in: the OCTA-500 FoV a tree
    holds (when ``fov`` is none) and the channels "auto" stands for, as ``config.json`` records them."""
    from samocta.data import channels_text, open_dataset

    index = open_dataset(config.data, config.fov, config.channels, config.fov_mm, label_task=config.task)
    fov = index.fov if index.kind == "OCTA-500" else None
    return replace(config, fov=fov, channels=channels_text(index.channels)), index


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``lr`` at an optimiser step: linear warm-up from ``warmup_start_lr``, then per-epoch decay."""
    warm = config.warmup_epochs * steps_per_epoch
    start = config.warmup_start_lr / config.lr
    if step < warm:
        return start + (1 - start) * step / warm
    epochs_after = math.floor((step - warm) / steps_per_epoch)
    return max(config.lr_decay**epochs_after, config.min_lr / config.lr)


def _validate(model: "LoRASam", index: "Dataset", samples: dict[int, "Sample"], config: TrainConfig) -> dict[str, float]:
    """Validation scores, computed by ``samocta.evaluate.evaluate``: the same prompts, decoding and
    threshold as ``evaluate_run(run, part="val")`` in the run's prompt mode, so the two agree."""
    from samocta.evaluate import evaluate
    from samocta.prompts import PromptSpec

    specs = {config.prompt_mode: config.prompt_spec(), "none": PromptSpec.paper(config.task, "none")}
    results = evaluate(model, index, list(samples), config.task, specs, seed=config.seed, threshold=config.threshold,
                       progress=False, samples=samples)
    own = results[results["mode"] == config.prompt_mode]
    scores = {k: float(own[k].mean()) for k in ("dice", "jaccard", "cldice")}
    scores["dice_none"] = float(results.loc[results["mode"] == "none", "dice"].mean())
    return scores


def selection_score(config: TrainConfig, row: dict[str, float]) -> float:
    """What picks the best epoch: the validation Dice in the run's prompt mode, or, for a run that
    also trains without prompts (``no_prompt_fraction > 0``), the mean of that and the prompt-free Dice."""
    if config.no_prompt_fraction > 0 and config.prompt_mode != "none":
        return (row["val_dice"] + row["val_dice_none"]) / 2
    return row["val_dice"]


@dataclass
class _Fold:
    """What a fold's training works with: its folder, data, model and optimisation state."""

    config: TrainConfig
    run_dir: Path
    index: "Dataset"
    split: "Split"
    train_ds: "SegmentationDataset"
    val_samples: dict[int, "Sample"]
    device: torch.device
    model: "LoRASam"
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    precision: "Precision"
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, int] = (-1.0, -1)
    forward: typing.Callable = None  # the model, or its DistributedDataParallel wrapper with several processes


def _saved_config(run_dir: Path) -> TrainConfig:
    path = run_dir / runs.CONFIG
    try:
        return TrainConfig.from_json(path)
    except (ValueError, TypeError, SamOctaError) as exc:  # JSON errors are ValueErrors
        raise TrainingError(f"{path}: unreadable run config ({exc}); restore it, or start afresh in another --out") from None


def config_differences(saved: TrainConfig, config: TrainConfig, done: int) -> list[str]:
    """The options in which ``config`` differs from a run's saved one. The run folder is the run,
    wherever it now is (``out`` is not compared), and the data path is compared resolved.

    ``epochs`` may grow: a finished run extended from its last checkpoint equals a run made with the
    larger number at once, because neither the learning-rate schedule (warm-up, then a decay per
    epoch) nor any random draw depends on the total. It may not fall below the ``done`` epochs.
    """
    differ = []
    for f in fields(TrainConfig):
        a, b = getattr(saved, f.name), getattr(config, f.name)
        if f.name == "out" or (f.name == "data" and Path(a).resolve() == Path(b).resolve()):
            continue
        if f.name == "epochs" and b >= done:
            continue
        if a != b:
            differ.append(f"{flag_of(f)} {a} (now {b}" + (f"; {done} epochs are done)" if f.name == "epochs" else ")"))
    return differ


def check_subjects(index: "Dataset", ids: list, task: str) -> dict:
    """Read every subject a run will use, before its first step, and refuse with every problem at once:
    unreadable or mis-oriented files, empty labels, images of different sizes.

    Returns:
        the subjects, read once for the whole run (training and validation use them from here).
    """
    from samocta.data import DatasetError
    from samocta.prompts import label_tasks

    problems, sizes, samples = [], {}, {}
    for sid in ids:
        sample, found = index.read(sid, label_tasks(task, index.tasks))
        problems += found
        if sample is not None:
            samples[sid] = sample
            sizes.setdefault(sample.image.shape[:2], []).append(sid)
            if not sample.labels[task].any():
                problems.append(f"{index.path(sid, task)}: the {task} label is empty; a run cannot learn or score it")
    if len(sizes) > 1:
        problems.append("subjects of different sizes: " + "; ".join(f"{s[0]}x{s[1]}: {v[:5]}" for s, v in sizes.items()))
    if problems:
        shown = "\n  - ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DatasetError(f"{len(problems)} problem(s) in the subjects this run reads (check-data lists them all):\n  - {shown}",
                           problems)
    return samples


def _prepare(config: TrainConfig, resume: bool) -> _Fold:
    """Check the folder, read the data and split, write config and split, build model and optimiser."""
    from samocta.data import SegmentationDataset, Split
    from samocta.model.speed import apply_speed_settings

    device = resolve_device(config.device)
    if device.type == "cuda" and device.index is None:  # the GPU this process uses (torchrun: its LOCAL_RANK's)
        device = torch.device("cuda", torch.cuda.current_device())
    run_dir = config.fold_dir()
    resuming = (run_dir / runs.CONFIG).exists() and (run_dir / runs.CHECKPOINT).exists()
    if resuming and not resume:
        raise TrainingError(f"{run_dir} already holds a run; pass resume=True (--resume) to continue it, or choose another --out")
    config, index = open_data(config)
    if resuming:
        done = len(read_history(run_dir)) if (run_dir / runs.HISTORY).exists() else 0
        differ = config_differences(_saved_config(run_dir), config, done)
        if differ:
            raise TrainingError(
                f"{run_dir} was made with other options: {'; '.join(differ)}. Resume with the run's own options, "
                f"or start afresh with another --out"
            )
    torch.manual_seed(config.seed)
    if resuming and (run_dir / runs.SPLIT).exists():
        # the subjects the run was trained and validated on, whatever is on disk now
        try:
            split = Split.from_json(run_dir / runs.SPLIT)
        except (ValueError, TypeError, KeyError) as exc:
            raise TrainingError(f"{run_dir / runs.SPLIT}: unreadable split ({exc}); start afresh in another --out") from None
        present = set(index.ids)
        gone = [i for i in split.train + split.val if i not in present]
        if gone:
            raise TrainingError(
                f"{run_dir} was trained on subjects no longer under {config.data}: {gone[:10]}; restore them to resume, "
                "or start afresh in another --out"
            )
    else:
        split = make_split(config, index)
    train_ids = split.train[: config.max_train] if config.max_train else split.train
    # every subject read and checked before anything is written: a refused run leaves no run folder behind
    samples = check_subjects(index, train_ids + split.val, config.task)
    if _rank_world()[0] == 0:
        if not resuming:
            split.to_json(run_dir / runs.SPLIT)
        config.to_json(run_dir / runs.CONFIG)  # a moved run folder records where it is now
    train_ds = SegmentationDataset(index, train_ids, config.task, prompt_fn=config.prompt_spec(), augment=config.augment or False,
                                   seed=config.seed, samples=samples)
    model = build_model(config, device)
    height, width = samples[split.val[0]].image.shape[:2]
    # what prediction brings new scans to: the training images' size and, when known, their width in mm
    model.trained_with.update({"image_size": f"{height}x{width}", "fov": index.fov, "dataset": index.name})
    if index.fov_mm is not None:
        model.trained_with["fov_mm"] = repr(index.fov_mm)
    precision = apply_speed_settings(model, device, config.amp, config.grad_checkpointing, config.sdpa, config.half_frozen,
                                     config.compile)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_ds) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(config, s, steps_per_epoch))
    val_samples = {sid: samples[sid] for sid in split.val}
    fold = _Fold(config, run_dir, index, split, train_ds, val_samples, device, model, opt, sched, precision, precision.scaler(device))
    fold.forward = model
    if _rank_world()[1] > 1:  # torchrun: gradients averaged over the processes, each with its share of the batch
        from torch.nn.parallel import DistributedDataParallel

        # SAM's buffers (pixel mean and std) are frozen: nothing to broadcast before each forward pass
        fold.forward = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                               broadcast_buffers=False)
    return fold


def _resume(fold: _Fold) -> None:
    """Restore adapter, optimiser, schedule, loss scale, RNG and history from ``last.pt`` if there is one."""
    last = fold.run_dir / runs.CHECKPOINT
    if not last.exists():
        return
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
        if not {"adapter", "optimizer", "scheduler", "epoch", "history"} <= set(state):
            raise ValueError("keys are missing")
    except Exception as exc:  # truncated, foreign or pickled-code files alike: say which file, not a pickle traceback
        raise TrainingError(
            f"{last}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); delete it to restart this fold "
            "from epoch 1, or restore it from a copy"
        ) from None
    params = dict(fold.model.sam.named_parameters())
    with torch.no_grad():
        for name, value in state["adapter"].items():
            params[name].copy_(value)
    fold.opt.load_state_dict(state["optimizer"])
    fold.sched.load_state_dict(state["scheduler"])
    fold.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    fold.start_epoch, fold.history = int(state["epoch"]), [dict(r) for r in json.loads(state["history"])]
    fold.best = (float(state["best_dice"]), int(state["best_epoch"]))


def _train_epoch(fold: _Fold, epoch: int, bar: bool) -> float:
    """One pass over the training subjects; returns the mean loss.

    With several processes (``torchrun``), every process walks the same batches in the same order
    and takes its share of each (the items at positions ``rank``, ``rank + world``, ...); each
    process weights its loss by its share of the batch, and DistributedDataParallel averages the
    gradients, so a step equals the step one process makes on the whole batch.
    """
    from tqdm.auto import tqdm

    from samocta.data import collate_batch
    from samocta.losses import loss_for_task
    from samocta.prompts import PromptSpec

    config, model = fold.config, fold.model
    rank, world = _rank_world()
    criterion = loss_for_task(config.task, preset=config.loss_preset)
    fold.train_ds.set_epoch(epoch)
    model.train()
    rng = np.random.default_rng([config.seed, epoch, BATCH_ORDER_SALT])
    order = rng.permutation(len(fold.train_ds))
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    losses: list[float] = []
    bar = tqdm(batches, desc=f"{config.task} {fold.split.name} epoch {epoch + 1}/{config.epochs}", disable=not bar or rank > 0,
               leave=False)
    for idx in bar:
        # the no-prompt draws are made for every item of the batch, in order, by every process
        no_points = [config.no_prompt_fraction > 0 and rng.random() < config.no_prompt_fraction for _ in idx]
        mine = [p for p in range(len(idx)) if p % world == rank]
        items = [fold.train_ds[int(idx[p])] for p in mine]
        for p, item in zip(mine, items):  # no points for this share of samples: the whole label is the target
            if no_points[p]:
                item["prompt"] = PromptSpec("none")(item["mask"], rng)  # draws nothing: SAM's padding point only
                item["target"] = item["mask"]
        share = len(mine) * world / len(idx)  # 1 with one process
        if not items:  # a short last batch leaves this process nothing: it runs one item weighted 0, so that
            items = [fold.train_ds[int(idx[0])]]  # every process takes part in the same collective steps
        batch = collate_batch(items)
        target = torch.as_tensor(batch["target"], device=fold.device).float().unsqueeze(1)
        with fold.precision.context(fold.device):
            out = fold.forward(batch["image"], batch["coords"], batch["point_labels"])
        loss = criterion(out.logits.float(), target)
        loss = loss * share if world > 1 else loss
        batch_loss = _mean_over_processes(loss.detach(), world)
        if not torch.isfinite(batch_loss):
            last = fold.run_dir / runs.CHECKPOINT
            kept = f"{last} (after epoch {fold.history[-1]['epoch']}) is kept" if fold.history else "none was written yet"
            raise TrainingError(
                f"non-finite loss ({batch_loss.item()}) in epoch {epoch + 1} on subjects "
                f"{[fold.train_ds.ids[int(i)] for i in idx]}; the last good checkpoint: {kept}. Lower the learning rate "
                "or check these subjects."
            )
        fold.opt.zero_grad(set_to_none=True)
        fold.scaler.scale(loss).backward()
        fold.scaler.step(fold.opt)
        fold.scaler.update()
        fold.sched.step()
        losses.append(batch_loss.item())
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return float(np.mean(losses))


def _rank_world() -> tuple[int, int]:
    """This process's rank and the number of training processes (0, 1 without torch.distributed)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_over_processes(value: torch.Tensor, world: int) -> torch.Tensor:
    """The batch loss every process agrees on: the sum of the weighted shares over processes / world."""
    if world == 1:
        return value
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value)
    return value / world


def init_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment): NCCL on
    GPUs (one per process, by ``LOCAL_RANK``), gloo on CPUs. Returns ``(rank, world)``."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return _rank_world()


def _save(fold: _Fold, row: dict[str, float], improved: bool) -> None:
    """Adapters, history and, last, the resumable checkpoint of a finished epoch."""
    if improved:
        fold.model.save_adapter(runs.adapter(fold.run_dir, "best"))
    fold.model.save_adapter(runs.adapter(fold.run_dir, "last"))
    # rows of a run resumed from an earlier version may lack a newer column: NaN there
    lines = [",".join(HISTORY_FIELDS)] + [",".join(str(r.get(k, float("nan"))) for k in HISTORY_FIELDS) for r in fold.history]
    atomic_write_text(fold.run_dir / runs.HISTORY, "\n".join(lines) + "\n")
    atomic_torch_save(
        {
            "adapter": fold.model.adapter_state_dict(),
            "optimizer": fold.opt.state_dict(),
            "scheduler": fold.sched.state_dict(),
            "scaler": fold.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "epoch": int(row["epoch"]),
            "history": json.dumps(fold.history),
            "best_dice": fold.best[0],
            "best_epoch": fold.best[1],
        },
        fold.run_dir / runs.CHECKPOINT,
    )


def train_fold(config: TrainConfig, resume: bool = False, progress: bool | str = True) -> FoldResult:
    """Train one fold (or the standard split) as ``config`` says; resume it if asked.

    The fold folder is locked while the run uses it: a second training into it is refused.

    Args:
        progress: True: say what the run is about to do, a progress bar per epoch and a line per
            epoch with its time and the time left; "lines": the same without bars (a rendered
            page); False: silent.

    Raises:
        TrainingError: a non-finite loss (the last good checkpoint is kept), ``resume`` into a
            folder whose config differs, or an unreadable checkpoint, config or split.
        DatasetError: a subject the run would read is unreadable, mis-oriented or empty.
        FolderInUseError: another process is training into the same folder.
    """
    from samocta.files import folder_lock

    rank, _ = _rank_world()
    if rank > 0:  # with torchrun only the first process holds the folder and writes in it
        return _train(_prepare(config, resume), False)
    with folder_lock(config.fold_dir(), "a training"):
        return _train(_prepare(config, resume), progress)


def _announce(fold: _Fold) -> str:
    """What a run is about to do, before its first step: model, weights, device, data and folder."""
    from samocta.data import channels_label

    config, model = fold.config, fold.model
    precision = f"{str(fold.precision.dtype).removeprefix('torch.')} autocast" if fold.precision.autocast else "float32"
    weights = config.checkpoint or "the shipped tiny SAM"
    sha = f"SHA-256 {model.base_sha256}" if model.base_sha256 else "random weights"
    if fold.start_epoch >= config.epochs:
        plan = f"nothing to train: {fold.start_epoch} of {config.epochs} epochs done"
    elif fold.start_epoch:
        plan = f"epochs {fold.start_epoch + 1}-{config.epochs}, resuming after epoch {fold.start_epoch}"
    else:
        plan = f"{config.epochs} epoch" + ("s" if config.epochs > 1 else "")
    return "\n".join([
        f"training {config.task} with {config.prompt_mode} prompts into {fold.run_dir}",
        f"  model {config.model}: {weights} ({sha}); {model.num_trainable():,} trainable parameters",
        f"  device {fold.device} ({precision}), batch {config.batch_size}",
        f"  data {config.data} ({fold.index.name}, channels {channels_label(config.channels)}): {len(fold.train_ds)} "
        f"training and {len(fold.val_samples)} validation subjects ({fold.split.name} split)",
        f"  {plan}",
    ])


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _train(fold: _Fold, progress: bool | str) -> FoldResult:
    config = fold.config
    _resume(fold)
    if progress:
        print(_announce(fold), flush=True)
    spent: list[float] = []
    rank, _ = _rank_world()
    for epoch in range(fold.start_epoch, config.epochs):
        t0 = time.perf_counter()
        loss = _train_epoch(fold, epoch, bar=progress is True)
        if rank > 0:  # the first process validates and writes; the others go on to the next epoch's batches
            continue
        val = _validate(fold.model, fold.index, fold.val_samples, config)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss, "val_dice": val["dice"], "val_jaccard": val["jaccard"],
               "val_cldice": val["cldice"], "val_dice_none": val["dice_none"], "lr": fold.opt.param_groups[0]["lr"],
               "seconds": round(seconds, 2)}
        fold.history.append(row)
        spent.append(seconds)
        if progress:
            left = (config.epochs - epoch - 1) * float(np.mean(spent))
            print(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, val Dice {val['dice']:.4f} ({config.prompt_mode} "
                  f"prompts), {val['dice_none']:.4f} without prompts; {_duration(seconds)}, about {_duration(left)} left",
                  flush=True)
        score = selection_score(config, row)
        improved = score > fold.best[0]
        if improved:
            fold.best = (score, epoch + 1)
        _save(fold, row, improved)
    return FoldResult(fold.run_dir, fold.best[1], fold.best[0], fold.history)


def read_history(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The per-epoch rows of a fold's metrics.csv."""
    with open(Path(run_dir) / runs.HISTORY, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
