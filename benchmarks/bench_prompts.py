"""Prompt generation: milliseconds per call on a 400 x 400 capillary-like mask with hundreds of components.

Run: .venv/bin/python benchmarks/bench_prompts.py
Target (issue 4): global mode at most 20 ms per call on one core.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, single_core, timeit  # noqa: E402

single_core()

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from samocta.prompts import global_points, local_points  # noqa: E402
from samocta.synth import make_sample  # noqa: E402


def capillary_like(seed: int = 0) -> np.ndarray:
    """The synthetic 6M capillary label broken into hundreds of pieces, as real 6M labels are (123-584)."""
    mask = make_sample("6M", seed).labels["Capillary"]
    return mask & (np.random.default_rng(seed).random(mask.shape) > 0.2)


def main() -> None:
    print(f"machine: {machine()} (pinned to one core)")
    mask = capillary_like()
    k = ndimage.label(mask, np.ones((3, 3)))[1]
    print(f"mask 400 x 400, {mask.mean():.1%} foreground, {k} components (8-connected)")
    rng = np.random.default_rng(0)
    cases = {
        "global 1+1 per component (chessboard band)": lambda: global_points(mask, 1, 1, rng),
        "global 1+1 per component (euclidean band)": lambda: global_points(mask, 1, 1, rng, metric="euclidean"),
        "global 3+3 per component": lambda: global_points(mask, 3, 3, rng),
        "global, total 50 points": lambda: global_points(mask, 1, 0, rng, total=50),
        "local 2+2": lambda: local_points(mask, 2, 2, rng),
        "local 2+2 + 2 cross": lambda: local_points(mask, 2, 2, rng, other=np.roll(mask, 3, axis=1)),
    }
    for name, fn in cases.items():
        t = timeit(fn, repeat=50, warmup=3)
        print(f"{name:<45} median {t['median'] * 1e3:6.2f} ms  (min {t['min'] * 1e3:.2f}, max {t['max'] * 1e3:.2f})")
    print("target: global mode <= 20 ms per call")


if __name__ == "__main__":
    main()
