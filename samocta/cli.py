"""The command line: ``python -m samocta <command>``.

Each command is a thin layer over the package; ``--help`` on any command lists its options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from samocta.errors import SamOctaError

def _check_data(args: argparse.Namespace) -> int:
    from samocta.data import OCTA500

    index = OCTA500(args.root, args.fov)
    print(index.summary())
    problems = index.validate(check_orientation=not args.no_orientation, progress=sys.stderr.isatty())
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nno problems found")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from samocta.synth import write_octa500

    ids = write_octa500(args.out, args.fov, args.n, args.seed, layout=args.layout, size=args.size)
    print(f"wrote {len(ids)} synthetic {args.fov} subjects ({ids[0]}-{ids[-1]}) to {args.out} ({args.layout} layout)")
    return 0


def _pretrain_tiny(args: argparse.Namespace) -> int:
    import json

    from samocta.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(steps=args.steps, seed=args.seed, threads=args.threads)
    summary = pretrain(args.out, cfg, device=args.device)
    print(json.dumps(summary, indent=1))
    print(f"weights: {args.out}/sam_tiny.safetensors (copy it and its SHA-256 into samocta/assets to ship it)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from samocta.train import TrainConfig, train_fold

    base = dict(
        data=args.data, fov=args.fov, task=args.task, model=args.model, checkpoint=args.checkpoint, split=args.split,
        k=args.k, split_seed=args.split_seed, rank=args.rank, train_decoder=args.train_decoder, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, prompt_mode=args.prompt_mode,
        seed=args.seed, device=args.device, out=args.out, amp=args.amp, grad_checkpointing=args.grad_checkpointing,
        sdpa=args.sdpa, half_frozen=args.half_frozen, compile=args.compile, max_train=args.max_train,
    )
    # the preset fills what the command line leaves unsaid
    for name in ("augment", "loss_preset", "mask_rule"):
        if getattr(args, name) is not None:
            base[name] = None if getattr(args, name) == "none" and name == "augment" else getattr(args, name)
    folds = range(args.k) if args.all_folds else [args.fold]
    if args.split == "standard" and args.all_folds:
        folds = [0]
    for fold in folds:
        result = train_fold(TrainConfig.preset(args.preset, **base, fold=fold), resume=args.resume, progress=not args.quiet)
        print(f"{result.run_dir}: best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from samocta.evaluate import evaluate_run
    from samocta.metrics import summarize

    run = Path(args.run)
    folds = [run] if (run / "config.json").exists() else sorted(p.parent for p in run.glob("*/config.json"))
    if not folds:
        print(f"error: no trained fold under {run} (expected config.json in it or in its fold folders)", file=sys.stderr)
        return 1
    modes = None if args.modes is None else [m.strip() for m in args.modes.split(",") if m.strip()]
    results = pd.concat(
        [evaluate_run(fold_dir, modes, part=args.part, adapter=args.select, save_masks=args.save_masks, progress=not args.quiet)
         for fold_dir in folds],
        ignore_index=True,
    )
    summary = summarize(results)
    if len(folds) > 1:
        summary.to_csv(run / f"summary-{results['part'].iloc[0]}.csv")
    columns = ["dice", "dice_std", "jaccard", "cldice", "hd95", "hd95_n", "empty_predictions", "n_subjects"]
    columns += ["n_folds"] if "n_folds" in summary.columns else []
    print(f"{run}: {', '.join(sorted(set(results['setup'])))}; {results['data_source'].iloc[0]} data; "
          f"{results['part'].iloc[0]} subjects; scored adapter: {'; '.join(sorted(set(results['selection'])))}")
    if (results["split"] == "kfold").any() and args.select == "best":
        print("note: each fold's best epoch was chosen on the validation fold it is scored on (as the reference code "
              "does); --select last scores the last epoch instead")
    print("per fold, and over folds (fold 'all': mean and std of the fold means); hd95 in pixels:")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[columns].round(4).to_string())
    return 0


def _bench(args: argparse.Namespace) -> int:
    from samocta import bench

    print(f"device: {bench.describe_machine(args.device)}")
    table = bench.run(args.model, args.device, quick=args.quick, variants=args.variants.split(","))
    print(f"model {args.model}, LoRA rank 4, input {'256' if args.model == 'tiny' else '1024'} px"
          f" ({'quick: 2 timed repeats' if args.quick else '10 timed repeats'}, medians):")
    print(table.round(3).to_string())
    if not args.no_extras:
        for name, value in bench.extras(3 if args.quick else 20).items():
            print(f"{name}: {value:.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m samocta", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-data", help="validate an OCTA-500 tree (either layout); exit 1 on any problem")
    p.add_argument("root", help="dataset folder (or its parent)")
    p.add_argument("--fov", choices=("3M", "6M"), required=True)
    p.add_argument("--no-orientation", action="store_true", help="skip the label orientation check")
    p.set_defaults(func=_check_data)

    p = sub.add_parser("synth", help="write synthetic OCTA in the OCTA-500 layout")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--fov", choices=("3M", "6M"), default="3M")
    p.add_argument("--n", type=int, default=40, help="number of subjects")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=("official", "samocta"), default="official")
    p.add_argument("--size", type=int, default=None, help="pixels per side (default 304 for 3M, 400 for 6M)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("pretrain-tiny", help="pretrain the tiny SAM on generic shapes (resumes from OUT/last.pt)")
    p.add_argument("--steps", type=int, default=7000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--out", default="runs/pretrain-tiny")
    p.set_defaults(func=_pretrain_tiny)

    p = sub.add_parser("train", help="fine-tune SAM with LoRA on one fold (or all folds, or the standard split)")
    p.add_argument("--data", required=True, help="dataset root (OCTA-500 or synthetic, either layout)")
    p.add_argument("--fov", choices=("3M", "6M"), default="3M")
    p.add_argument("--task", choices=("RV", "FAZ", "Capillary", "Artery", "Vein"), default="FAZ")
    p.add_argument("--model", choices=("tiny", "vit_b", "vit_l", "vit_h"), default="tiny")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint path, 'download' (the official file, SHA-256 checked) or 'random' (random weights); "
                        "default: the shipped tiny SAM (the official types need one)")
    p.add_argument("--split", choices=("standard", "kfold"), default="standard")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--all-folds", action="store_true", help="train every fold in turn (each fold is independent)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--train-decoder", action="store_true")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--prompt-mode", choices=("global", "local", "none"), default="global")
    p.add_argument("--preset", choices=("paper", "reference_code"), default="paper",
                   help="paper: the paper's choices; reference_code: the public code's loss weights, augmentation and single mask")
    p.add_argument("--augment", choices=("paper", "reference_code", "none"), default=None, help="default: the preset's")
    p.add_argument("--loss-preset", choices=("paper", "reference_code"), default=None, help="default: the preset's")
    p.add_argument("--mask-rule", choices=("most_confident", "single"), default=None,
                   help="most_confident: the most confident of SAM's three masks (the paper); single: the single-mask "
                        "output (the reference code); default: the preset's")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--grad-checkpointing", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--sdpa", choices=("auto", "on", "off"), default="auto", help="fused attention in the image encoder")
    p.add_argument("--half-frozen", choices=("auto", "on", "off"), default="auto",
                   help="keep the encoder's frozen weights in half precision (LoRA weights stay fp32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the image encoder")
    p.add_argument("--max-train", type=int, default=None, help="use at most this many training subjects")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/run")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score a trained run for prompt modes none / global / local")
    p.add_argument("--run", required=True, help="a run folder (all its folds) or one fold folder")
    p.add_argument("--modes", default=None,
                   help="comma-separated, some of none,global,local (default: none and the mode the run was trained in)")
    p.add_argument("--select", choices=("best", "last"), default="best",
                   help="the adapter to score: the epoch with the best validation Dice, or the last epoch")
    p.add_argument("--part", choices=("val", "test"), default=None, help="default: test (standard split) or val (k-fold)")
    p.add_argument("--save-masks", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("bench", help="speed and memory of SDPA, checkpointing, AMP and half-precision weights against the baseline")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", choices=("tiny", "vit_b", "vit_l", "vit_h"), default="tiny")
    p.add_argument("--variants", default=",".join(("baseline", "sdpa", "checkpointing", "amp", "half_frozen", "all")))
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test of the command)")
    p.add_argument("--no-extras", action="store_true", help="skip the prompt, metric and click figures")
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SamOctaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
