"""The run configuration: every option of a fine-tuning run, checked, saved with the run, compared on resume.

It sits below training, evaluation and prediction (each reads a run's ``config.json`` through it)
and above the model, whose adapter rules (``samocta.model.lora``: rank, dropout, prompt modes,
session length; ``samocta.model.build``: the input side) it declares its options with, so an
adapter and the run that wrote it are checked alike. ``TrainConfig`` declares each option once with
``option``: its help text, range and command-line flag.
"""

from __future__ import annotations

import json
import os
import re
import typing
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from samocta.core import runs
from samocta.core.errors import SamOctaError
from samocta.core.files import atomic_write_text
from samocta.core.options import MAX_SEED, check_fields, flag_of, option
from samocta.core.vocabulary import FOV_MM_RANGE, PAPER, Fov, Task
from samocta.model.build import INPUT_SIDES, input_size_problem
from samocta.model.checkpoints import ModelType
from samocta.model.lora import DROPOUT_RANGE, MAX_SESSION_CLICKS, RANK_RANGE, TrainMode
from samocta.model.promptable import MaskRule

if TYPE_CHECKING:
    from samocta.data import Dataset, Split
    from samocta.prompts import PromptSpec

Lever = Literal["auto", "on", "off"]
SplitKind = Literal["standard", "kfold"]
Preset = Literal["paper", "reference_code"]  # the augmentation and loss presets
Recipe = Literal["paper", "reference_code", "cpu"]
RECIPES: tuple[str, ...] = typing.get_args(Recipe)
# The choices each recipe makes; everything else keeps the dataclass default (the paper's choices).
# "cpu" is the best recipe for the tiny SAM on two CPU cores measured on real OCTA (the public
# OCTA-500 3M copy, large vessels; benchmarks/RESULTS.md, "A CPU SAM-OCTA on real OCTA" and "Vessel
# borders to the pixel"): within the method (LoRA on q and v of every block, frozen base, the paper's
# loss), a finer input, the decoder trained, a wider LoRA, half the samples without prompts so one
# adapter serves both, and the boundary loss beside the paper's, which charges a vessel drawn too wide
# by its seam (validation Dice 0.825 -> 0.840 without prompts, width bias +5 -> +3 µm).
RECIPE_CHOICES: dict[str, dict[str, object]] = {
    "paper": {},
    "reference_code": {"loss_preset": "reference_code", "augment": "reference_code", "mask_rule": "single"},
    "cpu": {"input_size": 1024, "train_decoder": True, "rank": 16, "no_prompt_fraction": 0.5, "mask_rule": "single",
            "lr_decay": 0.85, "epochs": 8, "boundary_weight": 1.0},
}
# Further choices of how the model learns that no recipe sets today but a run may change: a run that
# changes one departs from its recipe and says so in train's first lines.
RECIPE_LEVERS = ("fine", "boundary_weight", "alpha", "lora_dropout", "lr", "batch_size", "weight_decay", "threshold")
RECIPE_WHY = {
    "paper": "the paper's choices",
    "reference_code": "what the public SAM-OCTA code does: its loss weights, augmentation and single-mask output",
    "cpu": "the best recipe for the tiny SAM on a CPU, measured on real OCTA-500 3M",
}


def default_recipe(model: str) -> str:
    """The recipe ``train`` uses when none is named: "cpu" for the tiny SAM, the paper's for the official types."""
    return "cpu" if model == "tiny" else "paper"


def _as_typed(f, value) -> str:
    """How a user types ``value`` of option ``f``: ``--fine`` / ``--no-fine`` for a switch, ``--rank 4`` otherwise."""
    flag = flag_of(f)
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {value}"


def recipe_named(config: "TrainConfig") -> str:
    """The recipe of a run as a sentence says it: "the default recipe", "recipe paper", or "recipe cpu with
    `--epochs 20`" (what the run changed, as typed)."""
    name, changed = config.recipe()
    if not changed:
        return "the default recipe" if name == default_recipe(config.model) else f"recipe {name}"
    return f"recipe {name} with `{' '.join(changed)}`"


RESTORE = "restore the file as its training wrote it, or train the run again"


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
                                        "(none: unknown, measurements in mm are refused)", minimum=FOV_MM_RANGE[0],
                                  maximum=FOV_MM_RANGE[1])
    channels: str = option("auto", "what fills SAM's three input channels: auto (OCTA-500's three projections, a "
                                   "folder's own three or its one repeated), one projection name (repeated), or three "
                                   "names separated by commas (e.g. OPL_BM,ILM_OPL,FULL)")
    task: Task = option("FAZ", "segmentation task")
    split: SplitKind = option("standard", "standard: the IPN-V2 train/val/test split; kfold: fold --fold of --k folds")
    k: int = option(10, "number of folds of --split kfold", minimum=2)
    fold: int = option(0, "the fold to train, 0 .. k-1 (--split kfold)", minimum=0)
    split_seed: int = option(0, "seed of the k-fold shuffle", minimum=0, maximum=MAX_SEED)
    model: ModelType = option("tiny", "SAM type: the shipped tiny teaching SAM, or an official one")
    checkpoint: str | None = option(
        None, "base weights: a path, 'download' (the official file, SHA-256 checked) or 'random'; none: the shipped "
              "tiny SAM (the official types need one)")
    input_size: int | None = option(
        None, "the tiny SAM's input side in px, a multiple of 128 (its token grid is a sixteenth of it, its mask grid a "
              "quarter); none: 512 (TINY_CONFIG); the official types run at 1024", minimum=INPUT_SIDES[0], maximum=INPUT_SIDES[1])
    rank: int = option(4, "LoRA rank r (the paper: 4)", minimum=RANK_RANGE[0], maximum=RANK_RANGE[1])
    alpha: float | None = option(None, "LoRA alpha; the update is scaled by alpha / rank; none: alpha = rank", above=0)
    lora_dropout: float = option(0.0, "dropout on the LoRA input", minimum=DROPOUT_RANGE[0], maximum=DROPOUT_RANGE[1])
    train_decoder: bool = option(False, "train SAM's mask decoder too (SAM-OCTA: off)")
    fine: bool = option(False, "draw the mask at the scan's own pixels: a light convolutional stem on the scan, read by SAM's "
                               "mask tokens, trained with LoRA (samocta.model.fine); off: SAM's own mask grid, a quarter "
                               "of its token grid")
    epochs: int = option(10, "epochs to train (a finished run can be extended with --resume)", minimum=1)
    batch_size: int = option(4, "images per optimiser step", minimum=1, maximum=1024)
    lr: float = option(1e-3, "AdamW learning rate after warm-up (the paper: 1e-3)", above=0, maximum=1)
    warmup_start_lr: float = option(1e-5, "learning rate at the first step, rising linearly to --lr", above=0, maximum=1)
    warmup_epochs: float = option(1.0, "epochs of linear warm-up", minimum=0)
    lr_decay: float = option(0.97, "factor applied to the learning rate after each epoch past the warm-up", above=0, maximum=1)
    min_lr: float = option(1e-5, "floor of the decayed learning rate", minimum=0)
    weight_decay: float = option(1e-4, "AdamW weight decay", minimum=0)
    prompt_mode: TrainMode = option(
        "global", "prompt points the model is trained with (none: SAM's padding point only; clicks: simulated corrective-click "
                  "sessions, each click at the centre of the largest error of the model's own previous mask, that mask's "
                  "logits fed back where the model's mask prompt takes them (the official SAM), the loss on every step)")
    session_clicks: int = option(
        10, "the most clicks in one training session of --prompt-mode clicks; each sample draws 1 to this many",
        minimum=1, maximum=MAX_SESSION_CLICKS)
    n_pos: int | None = option(None, "positive points per component (global) or on the target (local); none: the paper's", minimum=0)
    n_neg: int | None = option(None, "negative points, likewise; none: the paper's", minimum=0)
    no_prompt_fraction: float = option(0.0, "share of training samples decoded with no points", minimum=0, maximum=1)
    augment: Preset | None = option("paper", "augmentation preset (none: no augmentation)")
    loss_preset: Preset = option("paper", "paper: 0.2 Dice + 0.8 clDice for vessels; reference_code: 0.96 / 0.04 as its code does")
    boundary_weight: float = option(
        0.0, "weight of the boundary loss (Kervadec et al., MIDL 2019; MONAI's BoundaryLoss) added to the task's loss: "
             "each predicted pixel pays its distance from the label's border, so a vessel drawn too wide costs by its "
             "seam; 0: off", minimum=0, maximum=10)
    mask_rule: MaskRule = option(
        "most_confident", "most_confident: the most confident of SAM's three masks (the paper); single: the single-mask "
                          "output (the reference code)")
    threshold: float = option(0.5, "probability above which a pixel is foreground", above=0, maximum=0.999)
    seed: int = option(0, "seed of every random choice of the run", minimum=0, maximum=MAX_SEED)
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
        from samocta.core.vocabulary import parse_channels

        parse_channels(self.channels)  # the spelling now; whether the data has them when the run opens it
        problem = input_size_problem(self.model, self.input_size)
        if problem:
            raise TrainingError(problem)
        if self.split == "kfold" and self.fold >= self.k:
            raise TrainingError(f"fold (--fold) must be 0 .. {self.k - 1} with --k {self.k}; got {self.fold}")
        if self.model != "tiny" and not self.checkpoint:
            from samocta.model.build import resolve_checkpoint

            resolve_checkpoint(self.model, None)  # raises, saying how to get the official weights
        if self.session_clicks != 10 and self.prompt_mode != "clicks":
            raise TrainingError("session_clicks (--session-clicks) sets the sessions of --prompt-mode clicks; "
                                f"this run trains with {self.prompt_mode} prompts")
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
        from samocta.core.files import read_json

        raw = read_json(path, "run config", RESTORE, max_bytes=1 << 20)
        if not isinstance(raw, dict):
            raise TrainingError(f"{path}: not a run config (expected an object of options); {RESTORE}")
        if "mask_rule" not in raw and "multimask" in raw:
            # configs written before the mask rule had a name: multimask=True was the paper's rule
            raw["mask_rule"] = "most_confident" if raw["multimask"] else "single"
        if raw.get("model", "tiny") != "tiny" and not raw.get("checkpoint"):
            raw["checkpoint"] = "random"  # what no checkpoint meant for the official types before it had to be said
        raw.setdefault("channels", ",".join(PAPER))  # runs made before the option filled them as the paper
        known = {f.name for f in fields(cls)}  # "prompts" is derived, not read back
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (SamOctaError, TypeError) as exc:
            # a value no training writes, told as the file's (the command reading it may have no such option)
            said = re.sub(r" \(--[a-z0-9-]+\)", "", str(exc))
            raise TrainingError(f"{path}: {said}; a training writes no such value: {RESTORE}") from None

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named recipe with ``overrides`` on top: "paper" (the dataclass defaults), "reference_code"
        (what the public SAM-OCTA code does in effect: its loss weights, augmentation and single-mask
        output), "cpu" (the tiny SAM's best CPU recipe, see ``RECIPE_CHOICES``) or "auto" (``default_recipe``
        of the model asked for)."""
        if name == "auto":
            name = default_recipe(overrides.get("model", cls.model))
        if name not in RECIPE_CHOICES:
            raise TrainingError(f"unknown preset {name!r}; expected auto or one of {', '.join(RECIPES)}")
        if name == "cpu" and overrides.get("model", cls.model) != "tiny":
            raise TrainingError(f"the cpu recipe is the tiny SAM's; {overrides['model']} keeps the paper's (--preset paper)")
        return cls(**{**RECIPE_CHOICES[name], **overrides})

    def recipe(self) -> tuple[str, list[str]]:
        """The recipe nearest to this config and the options in which the config departs from it
        (as ``--flag value``): ``("cpu", [])`` for a default tiny-SAM run, ``("cpu", ["--epochs 20"])`` ..."""
        chosen = sorted({k for choices in RECIPE_CHOICES.values() for k in choices} | set(RECIPE_LEVERS))
        defaults = {f.name: f for f in fields(self)}
        best: tuple[str, list[str]] | None = None
        for name, choices in RECIPE_CHOICES.items():
            if name == "cpu" and self.model != "tiny":
                continue
            differ = [_as_typed(defaults[k], getattr(self, k)) for k in chosen
                      if getattr(self, k) != choices.get(k, defaults[k].default)]
            if best is None or len(differ) < len(best[1]):
                best = (name, differ)
        return best

    def prompt_spec(self) -> "PromptSpec":
        """The prompt recipe of the run: the paper's for its task and mode, with ``n_pos``/``n_neg`` if set."""
        from samocta.prompts import PromptSpec

        if self.prompt_mode == "clicks":  # the data draws no points; the sessions place them (samocta.evaluate.clicks)
            return PromptSpec.paper(self.task, "none")
        spec = PromptSpec.paper(self.task, self.prompt_mode)
        if self.n_pos is not None or self.n_neg is not None:
            spec = PromptSpec(
                self.prompt_mode, spec.n_pos if self.n_pos is None else self.n_pos, spec.n_neg if self.n_neg is None else self.n_neg,
                task=self.task,
            )
        return spec

    def fold_dir(self) -> Path:
        return Path(self.out) / runs.fold_name(self.split, self.fold)


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


def saved_config(run_dir: str | os.PathLike) -> TrainConfig:
    """A run folder's config.json, or a TrainingError saying how to recover."""
    path = Path(run_dir) / runs.CONFIG
    try:
        return TrainConfig.from_json(path)
    except (ValueError, TypeError, SamOctaError) as exc:  # JSON errors are ValueErrors
        # the file's own message, without its path and advice again: one path, the advice of a training
        said = str(exc).removeprefix(f"{path}: ").split(f"; {RESTORE}")[0]
        raise TrainingError(f"{path}: unreadable run config ({said}); restore it, or start afresh in another --out") from None


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
