"""Synthetic OCTA: seconds per sample on one core, and the generated statistics against real OCTA-500.

Run: .venv/bin/python benchmarks/bench_synth.py [--n 20]
Targets (issue 3): at most 0.5 s per 304 x 304 (3M) sample and 1 s per 400 x 400 (6M) sample.
Issue 21: the macular anatomy (FAZ shape and contrast, where the large vessels end, their calibre)
beside real OCTA-500 and published values, for both fields of view.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, single_core, timeit  # noqa: E402

single_core()

import pandas as pd  # noqa: E402

from samocta.synth import make_sample  # noqa: E402
from samocta.synth.stats import anatomy_table, calibration_table  # noqa: E402


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

    pd.set_option("display.max_colwidth", 60)
    for fov in ("3M", "6M"):
        samples = [make_sample(fov, s) for s in range(args.n)]
        kinds = [s.meta["faz_kind"] for s in samples]
        print(f"\n{fov}, seeds 0-{args.n - 1} ({kinds.count('healthy')} healthy FAZ, {len(kinds) - kinds.count('healthy')} diabetic retinopathy)")
        print(calibration_table(samples).to_markdown(index=False))
        print()
        print(anatomy_table(samples).to_markdown(index=False))
        healthy = [s for s in samples if s.meta["faz_kind"] == "healthy"]
        print()
        shape_rows = ["FAZ circularity", "FAZ solidity", "FAZ area mm2"]
        print(anatomy_table(healthy).set_index("quantity").loc[shape_rows].to_markdown(), "(healthy FAZ only)")


if __name__ == "__main__":
    main()
