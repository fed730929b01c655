"""One projection or three, and scores across datasets (issue 27), on synthetic OCTA with the shipped tiny SAM.

Run: .venv/bin/python benchmarks/bench_datasets.py [--work DIR] [--epochs N]

1. The same task trained with the paper's three projections and with ILM_OPL alone repeated in SAM's
   three channels (the public single-projection copy of OCTA-500), both scored on the same test
   subjects of the same tree.
2. The three-projection runs scored on other datasets: the 6M tree (400 px over 6 mm: trained on 3M,
   scored on 6M), and a folder dataset of new subjects (256 px over 2.5 mm, projections in folders
   of their own); each with the scan brought to the training pixel size (the package's way) and
   shown to SAM as it is (SAM's own resize only), to measure what the resampling is worth.
3. The ILM_OPL run scored on a single-projection folder copy of its own tree: the same subjects in
   another form must score as on the tree (the subjects it trained on are left out).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from common import machine  # noqa: E402

from samocta.decode import AutoPromptFallback  # noqa: E402
from samocta.evaluate import evaluate_run  # noqa: E402
from samocta.synth import ensure_synthetic, write_folder  # noqa: E402
from samocta.train import TrainConfig, train_fold  # noqa: E402

SETTINGS = {"FAZ": dict(train_decoder=True, lr=5e-4, no_prompt_fraction=0.5), "RV": dict(train_decoder=True, lr=5e-4)}


def summary(results: pd.DataFrame, label: str) -> dict:
    by = results.groupby("mode")["dice"].mean()
    return {"row": label, "trained on": results["trained_on"].iloc[0], "scored on": results["scored_on"].iloc[0],
            "channels": results["channels"].iloc[0], "subjects": results["id"].nunique(),
            "Dice none": round(by.get("none", float("nan")), 3), "Dice global": round(by.get("global", float("nan")), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="runs/bench-datasets")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    work = Path(args.work)
    warnings.simplefilter("ignore", AutoPromptFallback)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    tree3 = ensure_synthetic(work / "synthetic-3M", "3M", n=40, seed=0)
    tree6 = ensure_synthetic(work / "synthetic-6M", "6M", n=20, seed=1)
    clinic = work / "clinic-2.5mm"
    if not (clinic / "dataset.json").exists():
        write_folder(clinic, n=12, seed=2, size=256, fov_mm=2.5, projections=("OPL_BM", "ILM_OPL", "FULL"), tasks=("RV", "FAZ"),
                     layout="subfolders", stems="name", progress=False)
    copy = work / "single-projection-copy"
    if not (copy / "dataset.json").exists():  # the same 40 subjects as tree3, ILM_OPL only, in split folders
        write_folder(copy, n=40, seed=0, fov="3M", projections=("ILM_OPL",), tasks=("RV", "FAZ"), layout="split", progress=False)
    rows = []
    for task, extra in SETTINGS.items():
        runs = {}
        for channels in ("auto", "ILM_OPL"):
            config = TrainConfig(data=str(tree3), task=task, channels=channels, epochs=args.epochs, batch_size=4,
                                 out=str(work / f"{task}-{channels}"), device="cpu", **extra)
            t0 = time.perf_counter()
            result = train_fold(config, resume=True, progress=False)
            runs[channels] = result.run_dir
            own = evaluate_run(result.run_dir, ["none", "global"], progress=False)
            rows.append({**summary(own, f"{task}: own test subjects"), "train s": round(time.perf_counter() - t0)})
        for other, fov_mm, label in ((tree6, None, "3M -> 6M"), (clinic, None, "3 mm -> 2.5 mm folder")):
            scored = evaluate_run(runs["auto"], ["none", "global"], data=other, progress=False)
            rows.append(summary(scored, f"{task}: {label}, resampled"))
            # the same, shown to SAM as it is: the adapter's record of its training images taken away
            from samocta.data.source import open_for_adapter
            from samocta.evaluate import evaluate
            from samocta.model import build_model
            from samocta.prompts import PromptSpec

            config = TrainConfig.from_json(runs["auto"] / "config.json")
            model = build_model(config)
            model.load_adapter(runs["auto"] / "adapter_best.safetensors")
            model.trained_with = {}
            index = open_for_adapter(other, config.channels, label_task=task)
            plain = evaluate(model, index, index.ids, task, {"none": PromptSpec.paper(task, "none"), "global": config.prompt_spec()},
                             seed=config.seed, progress=False)
            plain["trained_on"], plain["scored_on"], plain["channels"] = scored["trained_on"].iloc[0], index.name, scored["channels"].iloc[0]
            rows.append(summary(plain, f"{task}: {label}, SAM's resize only"))
        scored = evaluate_run(runs["ILM_OPL"], ["none", "global"], data=copy, fov_mm=3.0, progress=False)
        rows.append(summary(scored, f"{task}: its single-projection folder copy"))
    table = pd.DataFrame(rows).set_index("row")
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 40):
        print(table.to_string())
    print(f"(tiny SAM, {args.epochs} epochs, batch 4, the paper's global prompts; FAZ: LoRA + decoder, half the samples "
          "without prompts; RV: LoRA + decoder; test subjects of the standard split, or every subject of the other data)")


if __name__ == "__main__":
    main()
