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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SamOctaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
