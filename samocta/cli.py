"""The command line: ``python -m samocta <command>``.

Each command is a thin layer over the package; ``--help`` on any command lists its options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from samocta.errors import SamOctaError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m samocta", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-data", help="validate an OCTA-500 tree (either layout); exit 1 on any problem")
    p.add_argument("root", help="dataset folder (or its parent)")
    p.add_argument("--fov", choices=("3M", "6M"), required=True)
    p.add_argument("--no-orientation", action="store_true", help="skip the label orientation check")
    p.set_defaults(func=_check_data)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


# Later modules (synth, model, train, ...) append a function that adds their subparser.
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SamOctaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
