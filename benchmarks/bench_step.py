"""One training step at batch 4 (forward, loss, backward, AdamW step) with prompts of different lengths.

Run: .venv/bin/python benchmarks/bench_step.py [--models tiny,vit_b] [--repeat N]
Measures what issue 14's change of decoding costs: each image decoded with exactly its own points
(plus SAM's single padding point) instead of all prompts padded to the longest with "not a point"
tokens. The batch holds global-mode RV prompts of four synthetic 3M subjects (their lengths are
printed). vit_b uses random weights in the official layout (no checkpoint is needed to time it) and
activation checkpointing per encoder block: without it a batch of four 1024 px images needs more
than the 24 GiB of a CI-class machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import commit, machine, timeit  # noqa: E402

from samocta.model import LoRASam, build_sam  # noqa: E402
from samocta.prompts import PromptSpec, collate_prompts  # noqa: E402
from samocta.synth import make_sample  # noqa: E402
from samocta.train import loss_for_task  # noqa: E402


def batch(n: int = 4, seed: int = 0):
    samples = [make_sample("3M", seed + i) for i in range(n)]
    spec = PromptSpec.paper("RV", "global")
    prompts = [spec(s.labels["RV"], np.random.default_rng([seed, i])) for i, s in enumerate(samples)]
    coords, labels = collate_prompts(prompts)
    images = np.stack([s.image for s in samples])
    targets = torch.as_tensor(np.stack([p.target for p in prompts])).float().unsqueeze(1)
    return images, coords, labels, targets, [len(p) for p in prompts]


def step_time(model_type: str, repeat: int, rule: str | None) -> dict[str, float]:
    torch.manual_seed(0)
    sam = build_sam(model_type) if model_type == "tiny" else build_sam(model_type, None)
    model = LoRASam(sam, rank=4)
    if model_type != "tiny":
        from samocta.model.speed import enable_checkpointing

        enable_checkpointing(model)
    if rule is not None and hasattr(model, "mask_rule"):
        model.mask_rule = rule
    model.train()
    images, coords, labels, targets, lengths = batch()
    criterion = loss_for_task("RV")
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def step():
        out = model(images, coords, labels)
        loss = criterion(out.logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = timeit(step, repeat=repeat, warmup=1)
    return {**t, "points": lengths}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny,vit_b")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rule", default="single", help="mask rule where the code has one (single: as before the change)")
    args = parser.parse_args()
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, commit {commit()}")
    for model_type in args.models.split(","):
        t = step_time(model_type, args.repeat if model_type == "tiny" else max(2, args.repeat // 2), args.rule)
        print(f"{model_type}: batch 4, prompt lengths {t['points']}: step median {t['median']:.3f} s "
              f"(min {t['min']:.3f}, max {t['max']:.3f})", flush=True)


if __name__ == "__main__":
    main()
