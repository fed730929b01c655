"""The prepared GPU check of issue 10: vit_h LoRA training at 1024², batch 1, every lever against
the reference-style baseline, on one GPU in one process.

Targets: the optimised settings ("all": SDPA + activation checkpointing + AMP + half-precision
frozen weights) train at least 3x as many images per second as the baseline (fp32, eager
attention, no checkpointing), with peak memory at most 14 GB so that it fits a 16 GB card.

    python benchmarks/bench_gpu.py                      # on a GPU machine: vit_h, all variants
    python benchmarks/bench_gpu.py --device cpu --model tiny --quick   # the script's own smoke test

Writes ``bench_gpu.md`` and ``bench_gpu.json`` to ``--out`` (default ``$OUT`` or ``_build/bench``).
Without CUDA and without ``--device cpu`` it says so and exits 0, so ``make bench`` passes on a
CPU machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

import torch

from samocta.train import bench

MEMORY_LIMIT_MIB = 14 * 1000**3 / 2**20  # 14 GB, the figure, in MiB
SPEED_TARGET = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="vit_h", choices=("tiny", "vit_b", "vit_l", "vit_h"))
    parser.add_argument("--variants", default=",".join(bench.VARIANTS))
    parser.add_argument("--max-batch", type=int, default=16, help="largest batch tried (CUDA only)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.environ.get("OUT") or "_build/bench")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run it on a GPU machine, or pass --device cpu)")
        return 0

    machine = bench.describe_machine(args.device)
    variants = tuple(v for v in args.variants.split(",") if v)
    table = bench.run(args.model, args.device, quick=args.quick, variants=variants, max_batch=args.max_batch)
    checks = {}
    if "baseline" in table.index and "all" in table.index:
        ratio = table.loc["all", "train images/s"] / table.loc["baseline", "train images/s"]
        peak = table.loc["all", "peak memory MiB"]
        checks = {
            "train images/s, all / baseline": round(float(ratio), 2),
            f"speed target ({SPEED_TARGET}x) met": bool(ratio >= SPEED_TARGET),
            "peak memory MiB, all": round(float(peak), 1),
            "memory target (14 GB) met": bool(peak <= MEMORY_LIMIT_MIB),
        }
    header = (
        f"# bench_gpu: {args.model}, {args.device}\n\n- Machine: {machine}\n"
        f"- Date: {datetime.date.today().isoformat()}\n- Command: `python benchmarks/bench_gpu.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n"
    )
    text = header + "\n" + table.round(4).to_markdown() + "\n\n" + "\n".join(f"- {k}: {v}" for k, v in checks.items()) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.md").write_text(text)
    payload = {"machine": machine, "model": args.model, "device": args.device, "quick": args.quick,
               "rows": table.reset_index().to_dict(orient="records"), "checks": checks}
    (out / "bench_gpu.json").write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
