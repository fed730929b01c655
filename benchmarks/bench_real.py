"""The default recipe on real OCTA: train on the public OCTA-500 3M copy, score its test subjects once in every prompt mode.

Run: .venv/bin/python benchmarks/bench_real.py [DATA] [--out RUN] [--label NAME] [--no-append] [-- TRAIN OPTIONS...]

DATA is the folder ``shared/real/octa500-3m-rv.sh`` lays out (default: $SAMOCTA_REAL, else
~/.cache/samocta-real/octa500-3m-rv); it never enters the repository, and without it the benchmark
says so and stops. The run trains exactly what a reader's ``python -m samocta train --data DATA
--task RV --out RUN`` trains (the defaults), plus any train options given after ``--`` (the
"before" rows: ``-- --preset paper --train-decoder --epochs 4``). Then ``python -m samocta evaluate
--run RUN --part test --modes none,global,auto,clicks`` scores the 50 test subjects: Dice, clDice,
HD95, Betti errors per mode, Dice after 1/3/5/10 corrective clicks and NoC@85/90. Training minutes
and the peak memory of each command are measured from the outside (the child's maximum RSS).
The table is printed and, unless --no-append, appended to benchmarks/RESULTS.md with the machine,
the commit, the data's digest and the commands. Test is scored once per finished recipe: tune on
the validation subjects (the run's metrics.csv), never on these numbers.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import commit, fail, machine, publish  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("SAMOCTA_REAL") or Path.home() / ".cache" / "samocta-real" / "octa500-3m-rv")
MODES = ("none", "global", "auto")


def timed(command: list[str]) -> tuple[float, float]:
    """Run a command (its output passes through); its wall minutes and its peak resident memory in GiB. A command
    that fails ends the benchmark with one line (its own error line is above it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    done = subprocess.run(command)
    if done.returncode:
        fail("bench_real", f"'{' '.join(command[2:4])}' ended with exit status {done.returncode} (its message is above)")
    minutes = (time.perf_counter() - t0) / 60
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB; the largest child so far
    return minutes, max(peak, before) / 2**20


def data_digest(data: Path) -> str:
    """The first 12 hex digits of the SHA-256 of the copy's SHA256SUMS (the script's own record of its files)."""
    sums = data / "SHA256SUMS"
    return hashlib.sha256(sums.read_bytes()).hexdigest()[:12] if sums.is_file() else "no SHA256SUMS"


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA), help="the laid-out real copy (default: %(default)s)")
    parser.add_argument("--out", default=None, help="the run folder (default: runs/<label> beside DATA, outside the repository)")
    parser.add_argument("--label", default=None, help="the row's name (default: 'defaults', or the extra train options)")
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if not 1 <= args.max_clicks <= 100:
        parser.error(f"--max-clicks is 1 to 100; got {args.max_clicks}")
    data = Path(args.data).expanduser()
    if not (data / "dataset.json").is_file():
        print(f"bench_real: no real OCTA copy at {data}; lay it out with shared/real/octa500-3m-rv.sh (skipped)")
        return
    label = args.label or (" ".join(extra) if extra else "defaults")
    slug = "".join(c if c.isalnum() else "-" for c in label).strip("-") or "defaults"
    run = Path(args.out).expanduser() if args.out else data.parent / "runs" / slug
    python = [sys.executable, "-m", "samocta"]
    train = [*python, "train", "--data", str(data), "--task", "RV", "--out", str(run), *extra]
    if (run / "standard" / "config.json").exists():
        train.append("--resume")  # an interrupted run goes on; a finished one trains nothing more
    evaluate = [*python, "evaluate", "--run", str(run), "--part", "test", "--modes", ",".join([*MODES, "clicks"]),
                "--max-clicks", str(args.max_clicks), "--quiet"]
    import pandas as pd

    fold = run / "standard"
    epochs_before = len(pd.read_csv(fold / "metrics.csv")) if (fold / "metrics.csv").is_file() else 0
    _, train_gib = timed(train)
    eval_min, eval_gib = timed(evaluate)

    results = pd.read_csv(fold / "results-test.csv")
    clicks = pd.read_csv(fold / "clicks-summary-test.csv")
    history = pd.read_csv(fold / "metrics.csv")
    # The training minutes are the run's own (its epochs' seconds), whether it trained here, was resumed here or was
    # finished before; the peak memory is measured only over what trained here.
    run_min = float(history["seconds"].sum()) / 60
    if epochs_before == 0:
        trained_here = f"Training {run_min:.1f} min (peak memory {train_gib:.1f} GiB)"
    elif epochs_before < len(history):
        trained_here = (f"Training {run_min:.1f} min by its metrics.csv, resumed here after epoch {epochs_before} (peak "
                        f"memory of the resumed part {train_gib:.1f} GiB)")
    else:
        trained_here = f"Training {run_min:.1f} min by its metrics.csv, trained before this benchmark (peak memory not measured here)"
    config = (fold / "config.json").read_text()
    best = history.loc[history["val_dice"].idxmax()] if "val_dice" in history else None
    trained = json.loads(config)
    # A click run validates on the mean Dice over its simulated sessions' 1..N clicks, not on generated prompts.
    prompted = (f"mean over 1–{trained['session_clicks']} corrective clicks" if trained.get("prompt_mode") == "clicks"
                else f"with {trained.get('prompt_mode', 'global')} prompts")
    rows = []
    for mode in MODES:
        part = results[results["mode"] == mode]
        rows.append(f"| {label} | {mode} | {part['dice'].mean():.3f} | {part['cldice'].mean():.3f} | "
                    f"{part['hd95_um'].mean():.1f} | {part['betti0_error'].mean():.1f} / {part['betti1_error'].mean():.1f} | "
                    f"{len(part)} |")
    click = clicks.iloc[0]
    curve = " / ".join(f"{click[f'dice@{k}']:.3f}" for k in (1, 3, 5, 10) if f"dice@{k}" in click)
    setup = results["setup"].iloc[0] if "setup" in results else ""
    lines = [
        "",
        f"### On real OCTA: {label} ({datetime.date.today().isoformat()})",
        "",
        f"- Data: the public OCTA-500 3M copy (ILM_OPL, large vessels; train / val / test 140 / 10 / 50), digest "
        f"{data_digest(data)}; scored on its 50 test subjects once",
        f"- Machine: {machine()}; commit {commit()}",
        f"- Model: {setup}; best epoch {int(best['epoch']) if best is not None else '?'} of {len(history)} "
        f"(validation Dice {best['val_dice']:.3f} {prompted}, {best['val_dice_none']:.3f} without)" if best is not None else "",
        f"- Commands: `python -m samocta train --data DATA --task RV --out RUN{' ' + ' '.join(extra) if extra else ''}`, then "
        f"`python -m samocta evaluate --run RUN --part test --modes {','.join([*MODES, 'clicks'])}`",
        f"- {trained_here}; scoring {eval_min:.1f} min ({eval_gib:.1f} GiB)",
        "",
        "| run | prompts | Dice | clDice | HD95 µm | Betti-0 / Betti-1 error | subjects |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Corrective clicks (from nothing, at most {args.max_clicks}): Dice at 1 / 3 / 5 / 10 clicks {curve}; "
        f"NoC@85 {click['NoC@85']:.1f} ({int(click['not reached @85'])} of {int(click['n_subjects'])} never reach 0.85), "
        f"NoC@90 {click['NoC@90']:.1f}.",
    ]
    text = "\n".join(line for line in lines if line is not None) + "\n"
    publish(text, not args.no_append)
    print(f"config of the run:\n{config}")


if __name__ == "__main__":
    main()
