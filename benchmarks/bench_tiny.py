"""The shipped tiny SAM: zero-shot mIoU on held-out generic shapes, and click-to-mask latency.

Run: .venv/bin/python benchmarks/bench_tiny.py [--shapes 200] [--vit-b]
Targets (issue 6): mIoU >= 0.6 with one positive point (>= 0.75 if pretrained on a GPU).
Issue 8: click-to-mask <= 100 ms with the tiny model on CPU, the embedding reused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import machine, timeit  # noqa: E402

from samocta.model import TINY_CONFIG, PromptableSam, build_sam  # noqa: E402
from samocta.train.pretrain import zero_shot_miou  # noqa: E402


def click_latency(model: PromptableSam, size: int, repeat: int = 30) -> dict[str, float]:
    """Seconds from a new point list to a thresholded mask at the original size, embedding cached."""
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    with torch.inference_mode():
        t0 = time.perf_counter()
        emb = model.embed(image)
        embed_s = time.perf_counter() - t0
        coords = np.array([[[size / 2, size / 2], [size / 3, size / 2], [size / 2, size / 3]]], np.float32)
        labels = np.array([[1, 0, 1]])

        def click():
            return model.decode(emb, coords, labels).masks(0.5)[0]

        t = timeit(click, repeat=repeat, warmup=2)
    return {"embed": embed_s, **t}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", type=int, default=200)
    parser.add_argument("--vit-b", action="store_true", help="also time vit_b (random weights, 1024 px)")
    args = parser.parse_args()
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = PromptableSam(build_sam("tiny", img_size=TINY_CONFIG["pretrain_img_size"])).eval()  # as pretrained
    t0 = time.perf_counter()
    one = zero_shot_miou(model, args.shapes, n_pos=1, n_neg=0)
    three = zero_shot_miou(model, args.shapes, n_pos=2, n_neg=1)
    print(f"zero-shot mIoU on {args.shapes} held-out shape scenes: 1 positive point {one:.3f}; "
          f"2 positive + 1 negative {three:.3f} ({time.perf_counter() - t0:.0f} s)")
    lat = click_latency(model, 304)
    print(f"tiny, 304 x 304 image: embedding {lat['embed'] * 1e3:.0f} ms once; click to mask median "
          f"{lat['median'] * 1e3:.1f} ms (min {lat['min'] * 1e3:.1f}, max {lat['max'] * 1e3:.1f})")
    if args.vit_b:
        vit = PromptableSam(build_sam("vit_b")).eval()
        lat = click_latency(vit, 304, repeat=10)
        print(f"vit_b, 304 x 304 image: embedding {lat['embed']:.1f} s once; click to mask median "
              f"{lat['median'] * 1e3:.1f} ms (min {lat['min'] * 1e3:.1f}, max {lat['max'] * 1e3:.1f})")


if __name__ == "__main__":
    main()
