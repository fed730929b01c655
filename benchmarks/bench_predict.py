"""Segmenting scans without labels: mixed-prompt adapters, automatic prompts, predict over many subjects.

Run: .venv/bin/python benchmarks/bench_predict.py [--work DIR] [--epochs N]
Issue 17, with the tiny SAM on synthetic 3M OCTA (40 subjects, standard split, batch 4):
- FAZ: an adapter trained with LoRA + decoder and half the samples without prompts ("mixed") against
  one trained with prompts only, the same way; test Dice with no prompts, automatic prompts and
  global prompts (targets: mixed prompt-free >= 0.90; mixed global within 0.02 of prompt-only;
  auto >= none).
- RV: the same three Dice of a mixed adapter.
- predict: 50 synthetic subjects with their label files deleted, prompt-free, files included
  (target <= 1 s per subject on 2 cores); its FAZ areas against the hidden labels' (target: within
  10 % on average).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from common import machine  # noqa: E402

from samocta.cli import main as cli  # noqa: E402
from samocta.data import OCTA500  # noqa: E402
from samocta.decode import AutoPromptFallback  # noqa: E402
from samocta.evaluate import evaluate_run  # noqa: E402
from samocta.measure import measure  # noqa: E402
from samocta.synth import ensure_synthetic, write_octa500  # noqa: E402
from samocta.train import TrainConfig, train_fold  # noqa: E402


def trained(work: Path, root: Path, name: str, **kw) -> tuple[Path, float]:
    config = TrainConfig(data=str(root), batch_size=4, out=str(work / name), device="cpu", **kw)
    t0 = time.perf_counter()
    result = train_fold(config, resume=True, progress=False)
    return result.run_dir, (time.perf_counter() - t0) / 60


def scores(run: Path) -> dict[str, float]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AutoPromptFallback)
        results = evaluate_run(run, ["none", "auto", "global"], part="test", progress=False)
    by = results.groupby("mode")["dice"].mean()
    return {"none": by["none"], "auto": by["auto"], "global": by["global"],
            "auto fallbacks": sum(issubclass(w.category, AutoPromptFallback) for w in caught)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="runs/bench-predict")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    work = Path(args.work)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    root = ensure_synthetic(work / "data", "3M", n=40, seed=0)
    rows = []
    for name, task, fraction in (("faz-mixed", "FAZ", 0.5), ("faz-prompted", "FAZ", 0.0), ("rv-mixed", "RV", 0.5)):
        kw = dict(task=task, epochs=args.epochs, train_decoder=True, lr=5e-4, no_prompt_fraction=fraction)
        if task == "RV":
            kw["loss_preset"] = "reference_code"
        run, minutes = trained(work, root, name, **kw)
        rows.append({"adapter": name, "task": task, "no-prompt fraction": fraction, "minutes": round(minutes, 1),
                     **{f"test Dice {k}": round(v, 3) if isinstance(v, float) else v for k, v in scores(run).items()}})
        print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))

    # predict over 50 unlabelled subjects with the mixed FAZ adapter
    scans = work / "unlabelled"
    if scans.exists():
        shutil.rmtree(scans)
    write_octa500(scans, "3M", n=50, seed=123, progress=False)
    hidden = OCTA500(scans, "3M")
    truth = {sid: measure(hidden.load(sid, tasks=("FAZ",)).labels["FAZ"], "FAZ", "3M")["faz_area_mm2"] for sid in hidden.ids}
    shutil.rmtree(scans / "Label")
    out = work / "predicted"
    t0 = time.perf_counter()
    code = cli(["predict", "--adapter", str(work / "faz-mixed"), "--input", str(scans), "--out", str(out), "--overwrite", "--quiet"])
    seconds = time.perf_counter() - t0
    assert code == 0
    table = pd.read_csv(out / "measurements.csv")
    predicted = dict(zip(table["id"], table["faz_area_mm2"]))
    errors = np.array([abs(predicted[sid] - area) / area for sid, area in truth.items()])
    print(f"predict: {len(table)} subjects in {seconds:.1f} s ({seconds / len(table):.2f} s per subject, files and model "
          f"loading included); FAZ area against the hidden labels: mean relative error {errors.mean():.1%} "
          f"(median {np.median(errors):.1%}, max {errors.max():.1%})")


if __name__ == "__main__":
    main()
