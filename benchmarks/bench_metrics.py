"""Metrics: all of them for one 400 x 400 prediction/label pair, on one core.

Run: .venv/bin/python benchmarks/bench_metrics.py
Target (issue 5): all metrics in at most 20 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, single_core, timeit  # noqa: E402

single_core()

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from samocta import metrics  # noqa: E402
from samocta.synth import make_sample  # noqa: E402


def main() -> None:
    print(f"machine: {machine()} (pinned to one core)")
    sample = make_sample("6M", 0)
    rng = np.random.default_rng(0)
    for task in ("RV", "Capillary", "FAZ"):
        gt = sample.labels[task]
        # a plausible prediction: the label shifted by a pixel, eroded in places, with speckles
        pred = np.roll(gt, 1, axis=0) & ~(rng.random(gt.shape) < 0.05)
        pred |= ndimage.binary_dilation(rng.random(gt.shape) < 0.001)
        t = timeit(lambda: metrics.all_metrics(pred, gt), repeat=30, warmup=2)
        parts = {name: timeit(lambda f=getattr(metrics, name): f(pred, gt), repeat=15)["median"] for name in ("dice", "cldice", "hd95", "betti_errors")}
        detail = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in parts.items())
        print(f"{task:<10} all metrics: median {t['median'] * 1e3:.1f} ms (min {t['min'] * 1e3:.1f}, max {t['max'] * 1e3:.1f}); {detail} ms")
    print("target: all metrics <= 20 ms per 400 x 400 pair")


if __name__ == "__main__":
    main()
