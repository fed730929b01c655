"""Fine-tuning one fold: LoRA (optionally + decoder), AdamW, warm-up then decay, validation, checkpoints, resume.

The files of a fold folder are listed in ``samocta.core.runs``. Every file is written atomically;
``last.pt`` is written last, so a run killed at any moment resumes from its last finished epoch
and, because every random choice is seeded by (seed, epoch, subject), reproduces the
uninterrupted run exactly.
"""

from __future__ import annotations

import functools
import json
import math
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

# TrainConfig, TrainingError and read_history are also reached as samocta.train's (the public API)
from samocta.config import TrainConfig, TrainingError, config_differences, make_split, open_data, saved_config
from samocta.core import runs
from samocta.core.files import atomic_torch_save
from samocta.core.runs import read_history
from samocta.data.source import check_subjects
from samocta.model.build import resolve_device
from samocta.model.lora import build_model
from samocta.prompts import label_tasks
from samocta.train.distributed import mean_over_processes, rank_world
from samocta.train.record import data_record, prediction_record

if TYPE_CHECKING:
    from samocta.data import Dataset, Sample, Split
    from samocta.model import LoRASam
    from samocta.model.speed import Precision
    from samocta.train.dataset import SegmentationDataset

# Salt of the per-epoch stream that orders batches and draws the no-prompt samples. The dataset's
# streams are keyed (seed, epoch, id_seed(subject)) for prompts and (seed, epoch, id_seed, 1) for
# augmentation; OCTA-500 ids are 10001-10500 and a folder dataset's stems hash to 2**62 and up, so
# this key (seed, epoch, 0xBA7C4 = 763844) coincides with no subject's but a stem "763844", and the
# batch order stays independent of every subject's draws.
# (Pretraining keys its batches (seed, step): a separate process with its own seed.)
BATCH_ORDER_SALT = 0xBA7C4
# The largest image side a training takes: OCTA-500's are 304 and 400 px, other devices' up to 1024;
# at 2048 px the full-size loss alone passes 6 GB at batch 1 (a prediction shows any size in views).
MAX_TRAIN_SIDE = 1024


@dataclass
class FoldResult:
    """What ``train_fold`` returns."""

    run_dir: Path
    best_epoch: int
    best_val_dice: float  # the selection score of the best epoch (see ``selection_score``)
    history: list[dict[str, float]] = field(default_factory=list)


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of ``lr`` at an optimiser step: linear warm-up from ``warmup_start_lr``, then per-epoch decay."""
    warm = config.warmup_epochs * steps_per_epoch
    start = config.warmup_start_lr / config.lr
    if step < warm:
        return start + (1 - start) * step / warm
    epochs_after = math.floor((step - warm) / steps_per_epoch)
    return max(config.lr_decay**epochs_after, config.min_lr / config.lr)


def _validate(model: "LoRASam", index: "Dataset", samples: dict[int, "Sample"], config: TrainConfig,
              keep: dict | None = None) -> dict[str, float]:
    """Validation scores, computed by ``samocta.evaluate.evaluate``: the same prompts, decoding and
    threshold as ``evaluate_run(run, part="val")`` in the run's prompt mode, so the two agree.

    A click-trained run is scored on the corrective clicks ``evaluate --modes clicks`` makes (up to
    ``session_clicks``, from start "click", decoded as the adapter records): the mean Dice over clicks
    1..N (Jaccard likewise, from each Dice); clDice is not measured per click (NaN).

    ``keep``, if given, receives the predicted masks (``evaluate``'s), so that the adapter saved after
    this validation records what its own prompt-free masks measure (``samocta.train.record``)."""
    from samocta.evaluate.clicks import evaluate_clicks
    from samocta.evaluate.score import evaluate
    from samocta.prompts import PromptSpec

    clicks = config.prompt_mode == "clicks"
    specs = {**({} if clicks else {config.prompt_mode: config.prompt_spec()}), "none": PromptSpec.paper(config.task, "none")}
    results = evaluate(model, index, list(samples), config.task, specs, seed=config.seed, threshold=config.threshold,
                       progress=False, samples=samples, keep=keep)
    dice_none = float(results.loc[results["mode"] == "none", "dice"].mean())
    if not clicks:
        own = results[results["mode"] == config.prompt_mode]
        return {**{k: float(own[k].mean()) for k in ("dice", "jaccard", "cldice")}, "dice_none": dice_none}
    curves = evaluate_clicks(model, index, list(samples), config.task, config.session_clicks, config.seed, config.threshold,
                             progress=False, samples=samples)
    clicked = curves[curves["click"] > 0]
    by_subject = clicked.groupby("id")["dice"]
    jaccard = (clicked["dice"] / (2 - clicked["dice"])).groupby(clicked["id"]).mean()
    return {"dice": float(by_subject.mean().mean()), "jaccard": float(jaccard.mean()), "cldice": float("nan"),
            "dice_none": dice_none}


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


def _prepare(config: TrainConfig, resume: bool) -> _Fold:
    """Check the folder, read the data and split, write config and split, build model and optimiser."""
    from samocta.data import Split
    from samocta.model.speed import apply_speed_settings
    from samocta.train.dataset import SegmentationDataset

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
        differ = config_differences(saved_config(run_dir), config, done)
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
    samples = check_subjects(index, train_ids + split.val, config.task, label_tasks(config.task, index.tasks))
    side = max(samples[split.val[0]].image.shape[:2])
    if side > MAX_TRAIN_SIDE:  # the loss and its gradients live at the image's own size: memory grows with it
        raise TrainingError(f"{index.where}: the images are {side} px a side; training takes at most {MAX_TRAIN_SIDE} "
                            "(the loss runs at the image's own size): downsample them, and give their width in mm as before")
    if rank_world()[0] == 0:
        if not resuming:
            split.to_json(run_dir / runs.SPLIT)
        config.to_json(run_dir / runs.CONFIG)  # a moved run folder records where it is now
    train_ds = SegmentationDataset(index, train_ids, config.task, prompt_fn=config.prompt_spec(), augment=config.augment or False,
                                   seed=config.seed, samples=samples)
    model = build_model(config, device)
    # what prediction brings new scans to (the training images' size, their width in mm) and holds their masks
    # against (what the training labels looked like)
    model.trained_with.update(data_record(index, samples, train_ids, config.task))
    precision = apply_speed_settings(model, device, config.amp, config.grad_checkpointing, config.sdpa, config.half_frozen,
                                     config.compile)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_ds) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(config, s, steps_per_epoch))
    val_samples = {sid: samples[sid] for sid in split.val}
    fold = _Fold(config, run_dir, index, split, train_ds, val_samples, device, model, opt, sched, precision, precision.scaler(device))
    fold.forward = model
    if rank_world()[1] > 1:  # torchrun: gradients averaged over the processes, each with its share of the batch
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
    expected = fold.model.adapter_state_dict()
    adapter = state["adapter"]
    if not isinstance(adapter, dict) or set(adapter) != set(expected) or any(
            not isinstance(v, torch.Tensor) or v.shape != expected[k].shape for k, v in adapter.items()):
        raise TrainingError(f"{last} holds another run's weights (other LoRA layers or shapes than this run's options "
                            "give); put this run's own last.pt back, or delete it to restart this fold from epoch 1")
    try:
        with torch.no_grad():
            for name, value in adapter.items():
                params[name].copy_(value)
        fold.opt.load_state_dict(state["optimizer"])
        fold.sched.load_state_dict(state["scheduler"])
        fold.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        fold.start_epoch, fold.history = int(state["epoch"]), [dict(r) for r in json.loads(state["history"])]
        fold.best = (float(state["best_dice"]), int(state["best_epoch"]))
    except (ValueError, TypeError, KeyError, RuntimeError, RecursionError) as exc:
        raise TrainingError(f"{last}: not this run's checkpoint ({type(exc).__name__}: {str(exc)[:150]}); put this run's own "
                            "last.pt back, or delete it to restart this fold from epoch 1") from None


def _train_epoch(fold: _Fold, epoch: int, bar: bool) -> float:
    """One pass over the training subjects; returns the mean loss.

    With several processes (``torchrun``), every process walks the same batches in the same order
    and takes its share of each (the items at positions ``rank``, ``rank + world``, ...); each
    process weights its loss by its share of the batch, and DistributedDataParallel averages the
    gradients, so a step equals the step one process makes on the whole batch.
    """
    from tqdm.auto import tqdm

    from samocta.decode.session import feeds_back
    from samocta.prompts import PromptSpec
    from samocta.train.dataset import collate_batch
    from samocta.train.losses import loss_for_task
    from samocta.train.sessions import training_sessions

    config, model = fold.config, fold.model
    rank, world = rank_world()
    clicking = config.prompt_mode == "clicks"
    criterion = loss_for_task(config.task, preset=config.loss_preset, reduction="none" if clicking else "mean",
                              boundary=config.boundary_weight)
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
        # a click session's length, drawn likewise (0: decoded without points)
        counts = [0 if no_points[p] else int(rng.integers(1, config.session_clicks + 1)) for p in range(len(idx))] \
            if clicking else None
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
        if clicking:
            mine_counts = [counts[p] for p in mine] if mine else [0]
            sessions = functools.partial(training_sessions, model, targets=batch["target"], counts=mine_counts,
                                         threshold=config.threshold, feedback=feeds_back(model))
            with fold.precision.context(fold.device):
                steps = fold.forward(batch["image"], None, None, decode_with=sessions)
            loss = _session_loss(criterion, steps, target)
        else:
            with fold.precision.context(fold.device):
                out = fold.forward(batch["image"], batch["coords"], batch["point_labels"])
            loss = criterion(out.logits.float(), target)
        loss = loss * share if world > 1 else loss
        batch_loss = mean_over_processes(loss.detach(), world)
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


def _session_loss(criterion: torch.nn.Module, steps: list, target: torch.Tensor) -> torch.Tensor:
    """The loss of a batch of click sessions: each sample's loss averaged over its decodes (every click
    of its session, or its one prompt-free decode), then over the samples, so a long session weighs
    no more than a prompt-free sample and the share of prompt-free training stays what was asked.

    Args:
        criterion: the task's loss with ``reduction="none"``.
        steps: ``samocta.train.sessions.training_sessions``' decodes.
        target: ``(B, 1, H, W)``.
    """
    decodes = torch.zeros(target.shape[0], device=target.device)
    for step in steps:
        decodes[step.samples] += 1
    total = target.new_zeros(())
    for step in steps:
        per_sample = criterion(step.logits.float(), target[step.samples])
        total = total + (per_sample / decodes[step.samples]).sum()
    return total / target.shape[0]


def _save(fold: _Fold, row: dict[str, float], improved: bool) -> None:
    """Adapters, history and, last, the resumable checkpoint of a finished epoch."""
    if improved:
        fold.model.save_adapter(runs.adapter(fold.run_dir, "best"))
    fold.model.save_adapter(runs.adapter(fold.run_dir, "last"))
    runs.write_history(fold.run_dir, fold.history)
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
    from samocta.core.files import folder_lock

    rank, _ = rank_world()
    if rank > 0:  # with torchrun only the first process holds the folder and writes in it
        return _train(_prepare(config, resume), False)
    with folder_lock(config.fold_dir(), "a training"):
        return _train(_prepare(config, resume), progress)


def _announce(fold: _Fold) -> str:
    """What a run is about to do, before its first step: model, weights, device, data and folder."""
    from samocta.data import channels_label
    from samocta.decode.session import feeds_back

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
    from samocta.config import RECIPE_WHY

    recipe, changed = config.recipe()
    return "\n".join([
        f"training {config.task} with "
        + (f"corrective-click sessions of 1 to {config.session_clicks} clicks (each mask "
           f"{'fed back' if feeds_back(model) else 'decoded from the clicks alone'})"
           if config.prompt_mode == "clicks" else f"{config.prompt_mode} prompts")
        + (f" ({config.no_prompt_fraction:.0%} of the samples without)" if config.no_prompt_fraction else "")
        + f" into {fold.run_dir}",
        f"  recipe {recipe}: {RECIPE_WHY[recipe]}" + (f"; changed: {', '.join(changed)}" if changed else ""),
        f"  model {config.model} at {model.img_size} px: {weights} ({sha}); {model.num_trainable():,} trainable parameters"
        + (", the decoder included" if config.train_decoder else "") + f"; LoRA rank {config.rank}",
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
    rank, _ = rank_world()
    for epoch in range(fold.start_epoch, config.epochs):
        t0 = time.perf_counter()
        loss = _train_epoch(fold, epoch, bar=progress is True)
        if rank > 0:  # the first process validates and writes; the others go on to the next epoch's batches
            continue
        masks: dict = {}
        val = _validate(fold.model, fold.index, fold.val_samples, config, keep=masks)
        # what this epoch's adapter draws on its validation subjects, recorded in the files saved from it
        fold.model.trained_with.update(prediction_record({sid: m for (sid, mode), m in masks.items() if mode == "none"},
                                                         fold.index, config.task))
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss, "val_dice": val["dice"], "val_jaccard": val["jaccard"],
               "val_cldice": val["cldice"], "val_dice_none": val["dice_none"], "lr": fold.opt.param_groups[0]["lr"],
               "seconds": round(seconds, 2)}
        fold.history.append(row)
        spent.append(seconds)
        if progress:
            left = (config.epochs - epoch - 1) * float(np.mean(spent))
            own = (f"mean over 1-{config.session_clicks} corrective clicks" if config.prompt_mode == "clicks"
                   else f"{config.prompt_mode} prompts")
            print(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}, val Dice {val['dice']:.4f} ({own}), "
                  f"{val['dice_none']:.4f} without prompts; {_duration(seconds)}, about {_duration(left)} left", flush=True)
        score = selection_score(config, row)
        improved = score > fold.best[0]
        if improved:
            fold.best = (score, epoch + 1)
        _save(fold, row, improved)
    return FoldResult(fold.run_dir, fold.best[1], fold.best[0], fold.history)
