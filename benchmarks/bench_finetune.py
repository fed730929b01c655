"""Fine-tuning the shipped tiny SAM on synthetic 3M OCTA: what each setting reaches in at most 5 minutes.

Run: .venv/bin/python benchmarks/bench_finetune.py [--work DIR] [--epochs N] [--rules R1,R2] [--only NAME,...]
Targets (issue 7), validation Dice with global prompts: FAZ >= 0.80 with LoRA only and >= 0.85 with
LoRA + decoder, each at least 0.15 above the model's zero-shot Dice; RV >= 0.5 with LoRA + decoder.
Issue 21: RV with LoRA only too, and every setting on the synthetic data of each generator version.
Issue 14: each setting under both mask rules (the most confident of three masks, the paper's; the
single-mask output, the reference code's), each trained, validated and scored with its own rule.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from samocta.data import OCTA500, Split  # noqa: E402
from samocta.evaluate import evaluate  # noqa: E402
from samocta.synth import ensure_synthetic  # noqa: E402
from samocta.model import build_model  # noqa: E402
from samocta.train import TrainConfig, train_fold  # noqa: E402


def scores(model, index, ids, task, seed) -> dict[str, float]:
    results = evaluate(model, index, ids, task, ("none", "global"), seed=seed, progress=False)
    by = results.groupby("mode")[["dice", "cldice"]].mean()
    return {"dice none": by.loc["none", "dice"], "dice global": by.loc["global", "dice"], "cldice global": by.loc["global", "cldice"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="runs/bench-finetune")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rules", default="most_confident,single", help="mask rules to train and score with")
    parser.add_argument("--only", default="", help="comma-separated setting names (default: all)")
    args = parser.parse_args()
    work = Path(args.work)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    root = ensure_synthetic(work / "data", "3M", n=40, seed=0)
    index = OCTA500(root, "3M")
    rows = []
    settings = (  # task, train the decoder, learning rate, loss preset
        ("FAZ", False, 1e-3, "paper"),
        ("FAZ", True, 5e-4, "paper"),
        ("RV", False, 1e-3, "paper"),
        ("RV", True, 5e-4, "paper"),
        ("RV", True, 5e-4, "reference_code"),
    )
    for (task, train_decoder, lr, preset), rule in [(st, r) for st in settings for r in args.rules.split(",")]:
        name = f"{task}-{'decoder' if train_decoder else 'lora'}" + ("" if preset == "paper" else f"-{preset}")
        if args.only and name not in args.only.split(","):
            continue
        config = TrainConfig(data=str(root), task=task, epochs=args.epochs, batch_size=4, train_decoder=train_decoder, lr=lr,
                             loss_preset=preset, mask_rule=rule, out=str(work / f"{name}-{rule}"), device="cpu")
        zero = build_model(config, torch.device("cpu"))
        t0 = time.perf_counter()
        result = train_fold(config, resume=True, progress=False)
        minutes = (time.perf_counter() - t0) / 60
        split = Split.from_json(result.run_dir / "split.json")
        before = scores(zero, index, split.val, task, config.seed)
        tuned = build_model(config, torch.device("cpu"))
        tuned.load_adapter(result.run_dir / "adapter_best.safetensors")
        after = scores(tuned, index, split.val, task, config.seed)
        test = scores(tuned, index, split.test, task, config.seed)
        rows.append({
            "task": task, "trained": "LoRA + decoder" if train_decoder else "LoRA only", "loss": preset, "mask rule": rule,
            "minutes": round(minutes, 1), "val Dice zero-shot": round(before["dice global"], 3), "val Dice": round(after["dice global"], 3),
            "val clDice": round(after["cldice global"], 3), "test Dice no prompts": round(test["dice none"], 3),
            "test Dice global prompts": round(test["dice global"], 3), "best epoch": result.best_epoch,
        })
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False) if hasattr(table, "to_markdown") else table.to_string(index=False))


if __name__ == "__main__":
    main()
