"""Does predict's quality rank real masks? Each label-free signal against the true Dice on real OCTA.

Run: .venv/bin/python benchmarks/bench_quality_real.py RUN [--choose N] [--no-append]

RUN is a run trained on the public OCTA-500 3M copy (``bench_real.py``'s, outside the repository).
Every scan is segmented as ``predict`` segments it (prompt-free, ``samocta.predict.scan_quality``),
its mask scored against its label, and each signal of ``QUALITY_SIGNALS`` compared with that Dice by
``calibrate`` (Spearman, the worst 10 % caught). The signal is chosen on the first ``--choose``
training subjects (the model has seen them: their Dice is higher, their ranking still informative)
and the test subjects are scored once. Printed and, unless --no-append, appended to
benchmarks/RESULTS.md with the machine and the commit.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import commit, fail, machine, publish, real_fold  # noqa: E402


def scores(model, index, ids, task: str, threshold: float):
    import pandas as pd

    from samocta.metrics import dice
    from samocta.predict import QUALITY_SIGNALS, scan_quality
    from samocta.prompts import label_tasks

    rows = []
    for sid in ids:
        sample = index.load(sid, tasks=label_tasks(task, index.tasks))
        checked = scan_quality(model, sample.image, "none", sample.pixel_um, threshold)
        rows.append({"id": sid, "dice": dice(checked.mask, sample.labels[task]),
                     **{s: float(getattr(checked, s)) for s in QUALITY_SIGNALS}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder trained on the real copy")
    parser.add_argument("--choose", type=int, default=40, help="training subjects the signal is chosen on (3 or more)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from samocta.config import open_data
    from samocta.core import runs
    from samocta.core.errors import SamOctaError
    from samocta.predict import QUALITY_SCORE, QUALITY_SIGNALS, calibrate, load_model

    fold, config, split = real_fold("bench_quality_real", args.run)
    if not 3 <= args.choose <= len(split.train):  # a calibration ranks at least 3; a negative count is no count
        fail("bench_quality_real", f"--choose is how many of the run's {len(split.train)} training subjects the signal is "
                                   f"chosen on, 3 to {len(split.train)}; got {args.choose}")
    try:
        config, index = open_data(config)
    except SamOctaError as exc:
        fail("bench_quality_real", f"the run's data: {exc}")
    model = load_model(runs.adapter(fold, "best"), device="cpu")
    t0 = time.perf_counter()
    chosen_on = scores(model, index, split.train[: args.choose], config.task, config.threshold)
    test = scores(model, index, split.test, config.task, config.threshold)
    seconds = (time.perf_counter() - t0) / (len(chosen_on) + len(test))
    table = []
    for signal in QUALITY_SIGNALS:
        a, b = calibrate(chosen_on[signal], chosen_on["dice"]), calibrate(test[signal], test["dice"])
        table.append(f"| {signal}{' (predict reports it)' if signal == QUALITY_SCORE else ''} | {a['spearman']:.2f} | "
                     f"{a['caught']:.2f} | {b['spearman']:.2f} | {b['caught']:.2f} ({int(round(b['caught'] * b['n_review']))} of "
                     f"{b['n_review']}) |")
    from samocta.config import recipe_named

    text = "\n".join([
        "",
        f"### Review signals on real OCTA ({datetime.date.today().isoformat()})",
        "",
        f"- Data: the public OCTA-500 3M copy, large vessels; chosen on {len(chosen_on)} training subjects, scored once on "
        f"the {len(test)} test subjects",
        f"- Model: {config.model} SAM, {Path(args.run).name} run ({recipe_named(config)}, "
        f"{config.prompt_mode} prompts), adapter_best, prompt-free masks as `predict` makes them",
        f"- Machine: {machine()}; commit {commit()}; {seconds:.1f} s per scan (the mask, its mirrored and auto variations)",
        f"- True Dice: training subjects {chosen_on['dice'].mean():.3f} (range {chosen_on['dice'].min():.3f}-"
        f"{chosen_on['dice'].max():.3f}), test {test['dice'].mean():.3f} ({test['dice'].min():.3f}-{test['dice'].max():.3f})",
        "",
        "| signal | Spearman, training subjects | worst 10 % caught | Spearman, test | worst 10 % caught, test |",
        "|---|---|---|---|---|",
        *table,
    ]) + "\n"
    publish(text, not args.no_append)


if __name__ == "__main__":
    main()
