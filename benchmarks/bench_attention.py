"""SDPA vs SAM's eager attention: vit_b image-encoder forward at 1024 x 1024 on this machine.

Run: .venv/bin/python benchmarks/bench_attention.py [--model vit_b] [--repeat 3]
Target (issue 10): at least 1.2x faster with SDPA on CPU; outputs equal within 1e-4 (fp32).
Configurations alternate within one process, on the same input.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import torch  # noqa: E402

from samocta.model import build_sam  # noqa: E402
from samocta.model.speed import disable_sdpa, enable_sdpa  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vit_b")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch.manual_seed(0)
    sam = build_sam(args.model)
    with torch.no_grad():  # non-zero relative positions (a fresh model has zeros there)
        for name, p in sam.image_encoder.named_parameters():
            if "rel_pos" in name:
                p.normal_(0, 0.02)
    size = sam.image_encoder.img_size
    x = torch.randn(1, 3, size, size)
    times = {"eager": [], "sdpa": []}
    outputs = {}
    with torch.inference_mode():
        for i in range(args.repeat + 1):
            for name in ("eager", "sdpa"):
                (enable_sdpa if name == "sdpa" else disable_sdpa)(sam)
                t = time.perf_counter()
                outputs[name] = sam.image_encoder(x)
                if i:  # the first round warms up
                    times[name].append(time.perf_counter() - t)
    diff = (outputs["eager"] - outputs["sdpa"]).abs().max().item()
    eager, sdpa = statistics.median(times["eager"]), statistics.median(times["sdpa"])
    print(f"{args.model} encoder forward, {size} x {size}, batch 1, fp32: eager {eager:.2f} s, SDPA {sdpa:.2f} s "
          f"(medians of {args.repeat}); speed-up {eager / sdpa:.2f}x; max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
