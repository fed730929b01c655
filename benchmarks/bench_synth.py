"""Synthetic OCTA: seconds per sample on one core, and the generated statistics against real OCTA-500.

Run: .venv/bin/python benchmarks/bench_synth.py [--n 20]
Targets (issue 3): at most 0.5 s per 304 x 304 (3M) sample and 1 s per 400 x 400 (6M) sample.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, single_core, timeit  # noqa: E402

single_core()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from samocta.synth import make_sample  # noqa: E402
from samocta.synth.stats import REAL_INTENSITY, REAL_LABELS, intensity_stats, label_stats  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20, help="samples per FoV")
    args = parser.parse_args()
    print(f"machine: {machine()} (pinned to one core)")
    for fov, limit in (("3M", 0.5), ("6M", 1.0)):
        seeds = iter(range(10_000))
        t = timeit(lambda: make_sample(fov, next(seeds)), repeat=args.n)
        verdict = "OK" if t["max"] <= limit else "OVER"
        print(f"{fov}: median {t['median']:.3f} s, min {t['min']:.3f} s, max {t['max']:.3f} s per sample (target <= {limit} s: {verdict})")

    samples = [make_sample("3M", s) for s in range(args.n)]
    rows = []
    for layer, targets in REAL_INTENSITY.items():
        for quantity, (lo, hi) in targets.items():
            values = [intensity_stats(s)[layer][quantity] for s in samples]
            rows.append((f"{layer} {quantity}", f"{lo}-{hi}", f"{np.mean(values):.1f} ({np.min(values):.0f}-{np.max(values):.0f})"))
    lab = [label_stats(s, s.meta["px_um"]) for s in samples]
    pairs = {"RV fraction": "RV fraction", "Capillary fraction": "Capillary fraction", "Artery fraction": "Artery fraction",
             "Vein fraction": "Vein fraction", "FAZ area mm2": "FAZ area mm2", "RV mean width px (3M)": "RV mean width px"}
    for real_key, key in pairs.items():
        values = [d[key] for d in lab]
        lo, hi = REAL_LABELS[real_key]
        rows.append((real_key, f"{lo}-{hi}" if lo != hi else f"{lo}", f"{np.mean(values):.3f} ({np.min(values):.3f}-{np.max(values):.3f})"))
    for key, real in (("RV beta1", "2-8"), ("Artery beta1", "0"), ("Vein beta1", "0"), ("Capillary beta1", "2349")):
        values = [d[key] for d in lab]
        rows.append((key, real, f"{np.mean(values):.1f} ({np.min(values)}-{np.max(values)})"))
    table = pd.DataFrame(rows, columns=["quantity", "real OCTA-500", f"synthetic 3M, mean (range) of {args.n}"])
    print(table.to_markdown(index=False) if hasattr(table, "to_markdown") else table.to_string(index=False))


if __name__ == "__main__":
    main()
