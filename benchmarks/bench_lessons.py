"""Smoke-mode lessons against the paper's (issue 28): the book's vessel, artery and mixed FAZ runs with
the tiny SAM at its former 256 px input and at 512 px, on the book's synthetic data.

Run: .venv/bin/python benchmarks/bench_lessons.py [--work DIR] [--sizes 256,512]

Targets (validation and test Dice on 40 synthetic 3M subjects, standard split, the book's seed):
RV with global prompts >= 0.75, RV prompt-free within 0.05 of prompted; artery with local prompts
>= 0.60 and at least 0.15 above prompt-free; a mixed FAZ adapter (half the samples without points)
after 8 epochs prompt-free >= 0.88 with a FAZ area error <= 10 %. The runs are the book's: chapter 4's
RV and artery settings (LoRA rank 16 + decoder, lr 1e-3, the reference code's loss weights, 12 epochs)
and chapter 6's mixed FAZ adapter (decoder, lr 5e-4, 8 epochs here).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from common import machine  # noqa: E402

from samocta.config import TrainConfig  # noqa: E402
from samocta.data import OCTA500, Split  # noqa: E402
from samocta.evaluate import evaluate, predict_modes  # noqa: E402
from samocta.measure import measure  # noqa: E402
from samocta.model import TINY_CONFIG, build_model  # noqa: E402
from samocta.prompts import PromptSpec  # noqa: E402
from samocta.reader import paper_lessons  # noqa: E402
from samocta.synth import ensure_synthetic  # noqa: E402
from samocta.train import train_fold  # noqa: E402

RUNS = {  # name: (task, prompt mode, TrainConfig fields)
    "RV": ("RV", "global", dict(train_decoder=True, rank=16, lr=1e-3, loss_preset="reference_code", epochs=12)),
    "Artery": ("Artery", "local", dict(train_decoder=True, rank=16, lr=1e-3, loss_preset="reference_code", epochs=12)),
    "FAZ-mixed": ("FAZ", "global", dict(train_decoder=True, lr=5e-4, no_prompt_fraction=0.5, epochs=8)),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="runs/bench-lessons")
    parser.add_argument("--sizes", default="256,512", help="the tiny SAM's input sides to compare")
    args = parser.parse_args()
    work = Path(args.work)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    root = ensure_synthetic(work / "data", "3M", n=40, seed=0)
    index = OCTA500(root, "3M")
    rows, results = [], {}
    for size in [int(s) for s in args.sizes.split(",")]:
        TINY_CONFIG["img_size"] = size  # build_tiny_sam reads it at build time; the weights are fitted to it
        for name, (task, mode, fields) in RUNS.items():
            config = TrainConfig(data=str(root), task=task, prompt_mode=mode, batch_size=4, device="cpu",
                                 out=str(work / f"{name}-{size}"), **fields)
            t0 = time.perf_counter()
            result = train_fold(config, resume=True, progress=False)
            minutes = (time.perf_counter() - t0) / 60
            model = build_model(config, torch.device("cpu"))
            model.load_adapter(result.run_dir / "adapter_best.safetensors")
            split = Split.from_json(result.run_dir / "split.json")
            specs = {"none": PromptSpec.paper(task, "none"), mode: config.prompt_spec()}
            test = evaluate(model, index, split.test, task, specs, seed=config.seed, progress=False)
            test["trained_mode"] = mode
            results.setdefault(size, []).append(test)
            by = test.groupby("mode")["dice"].mean()
            row = {"input px": size, "run": name, "task": task, "trained with": mode, "epochs": config.epochs,
                   "best epoch": result.best_epoch,
                   "val Dice, own prompts": round(result.history[result.best_epoch - 1]["val_dice"], 3),
                   "val Dice, no prompts": round(result.history[result.best_epoch - 1]["val_dice_none"], 3),
                   "test Dice, no prompts": round(by["none"], 3), "test Dice, own prompts": round(by[mode], 3),
                   "minutes": round(minutes, 1)}
            if task == "FAZ":  # area of the prompt-free mask against the label's, per held-out subject
                errors = []
                for sid in split.test:
                    sample = index.load(sid)
                    pred = next(p for m, _, p in predict_modes(model, sample, task, {"none": specs["none"]}, config.seed))
                    true = measure(sample.labels["FAZ"], "FAZ", "3M")["faz_area_mm2"]
                    errors.append(abs(measure(pred, "FAZ", "3M")["faz_area_mm2"] - true) / true)
                row["FAZ area error, no prompts (mean %)"] = round(100 * float(np.mean(errors)), 1)
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    for size, parts in results.items():
        lessons = paper_lessons(pd.concat(parts, ignore_index=True))
        print(f"\nlessons at {size} px:\n" + lessons.to_markdown(index=False))


if __name__ == "__main__":
    main()
