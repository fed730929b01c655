"""The ``train`` command as functions: its options, generated from ``TrainConfig``, and its run.

Both ``python -m samocta train`` (``samocta.cli``) and the grid's jobs (``samocta.grid``) use them,
so a job is exactly the command a reader could type, and the grid runs one without the command line.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from samocta.config import RECIPE_CHOICES, RECIPES, TrainConfig
from samocta.core.errors import SamOctaError
from samocta.core.options import add_arguments, given_arguments

PROG = "python -m samocta train"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The train command's options: ``--preset``, every ``TrainConfig`` field, ``--all-folds``, ``--resume``, ``--quiet``."""
    cpu = ", ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in RECIPE_CHOICES["cpu"].items())
    parser.add_argument("--preset", choices=("auto",) + RECIPES, default="auto",
                        help="the recipe the options start from (options given explicitly win): cpu, the tiny SAM's best "
                             f"recipe on two CPU cores measured on real OCTA-500 3M vessels ({cpu}); paper, the paper's "
                             "choices (the other options' defaults below); reference_code, the public code's loss weights, "
                             "augmentation and single mask; auto: cpu for --model tiny, paper for the official types; "
                             "default: auto")
    add_arguments(parser, TrainConfig, required=("data",))
    parser.add_argument("--all-folds", action="store_true", help="train every fold of --split kfold in turn (each fold is independent)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def parse_train_args(argv: Sequence[str]) -> argparse.Namespace:
    """The options of one train command (without the word ``train``).

    Raises:
        SamOctaError: an option the command does not take, or a value it refuses (argparse's message).
    """

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str):  # a message to pass on, not an exit of the calling process
            raise SamOctaError(f"train: {message} ({PROG} --help lists its options)")

    parser = _Parser(prog=PROG, add_help=False)
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def train_config(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The run configuration a parsed train command describes (its preset fills what the options leave unsaid)."""
    return TrainConfig.preset(args.preset, **{**given_arguments(TrainConfig, args), **overrides})


def run_train(args: argparse.Namespace) -> int:
    """Train what a parsed train command says: one fold, or every fold with ``--all-folds``; under
    ``torchrun`` one process per device, the batch shared among them. Returns the exit status."""
    from samocta.train.distributed import init_distributed
    from samocta.train.fold import train_fold

    first = train_config(args)
    folds = range(first.k) if args.all_folds and first.split == "kfold" else [first.fold]
    rank, world = init_distributed()
    if world > 1 and first.batch_size % world:
        raise SamOctaError(f"--batch-size {first.batch_size} is the whole batch, shared by the {world} processes: make it "
                           f"a multiple of {world}")
    for fold in folds:
        result = train_fold(train_config(args, fold=fold), resume=args.resume, progress=not args.quiet and rank == 0)
        if rank == 0:
            print(f"{result.run_dir}: best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0
