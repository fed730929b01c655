"""What a click is worth and when to trust a mask (issue 29), with the tiny SAM on synthetic 3M OCTA.

Run: .venv/bin/python benchmarks/bench_clicks.py --runs DIR [--held N] [--max-clicks 10]
DIR holds the book's runs (the ``runs`` folder in the chapters' WORKDIR after ``make book``): FAZ-tiny-global (chapter 3),
RV-tiny-global-decoder and Artery-tiny-local-decoder (chapter 4), FAZ-tiny-mixed (chapter 6).
On N held-out synthetic subjects (a seed no run trained on; default 24):
- corrective clicks (samocta.evaluate.clicks): Dice at 1/3/5/10 clicks, NoC@85/90, from start "click", with
  and without the previous logits fed back;
- the time per corrective click from a cached embedding (decode + the click rule), in the kernel, and
  the exported ONNX graph's decode in onnxruntime (the engine the browser's onnxruntime-web wraps);
- the quality signals of prompt-free predictions (samocta.predict.quality): Spearman with the true Dice and
  the share of the worst 10 % caught at a 10 % review rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from common import machine  # noqa: E402

RUNS = ("FAZ-tiny-global", "RV-tiny-global-decoder", "Artery-tiny-local-decoder", "FAZ-tiny-mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="the folder holding the book's runs")
    parser.add_argument("--held", type=int, default=24, help="held-out subjects; default 24")
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7, help="seed of the held-out subjects; default 7 (the book's data: 0)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")

    from samocta.data import open_dataset
    from samocta.decode import scan_views
    from samocta.evaluate import click_curve, click_summary
    from samocta.metrics import dice
    from samocta.model.export import INPUT_NAMES, export_decoder_onnx
    from samocta.predict import calibrate, load_model, scan_quality
    from samocta.prompts import fixed_rng
    from samocta.synth import write_octa500

    print(f"machine: {machine()}; torch {torch.__version__}")
    work = Path(tempfile.mkdtemp(prefix="bench-clicks-"))
    write_octa500(work / "held", "3M", args.held, seed=args.seed, progress=False)
    index = open_dataset(work / "held", fov="3M")
    samples = [index.load(i) for i in index.ids]
    rows, quality_rows = [], []
    for name in RUNS:
        run = Path(args.runs) / name / "standard"
        if not run.exists():
            print(f"{name}: not found under {args.runs}; left out")
            continue
        model = load_model(run)
        task = model.task
        with torch.inference_mode():
            views = [scan_views(model, s.image, s.pixel_um, str(s.id)) for s in samples]
        for feedback in (False, True):
            spent, clicks = 0.0, 0
            for sample, (resampling, embeddings) in zip(samples, views):
                t0 = time.perf_counter()
                curve = click_curve(model, resampling, embeddings, sample.labels[task], args.max_clicks,
                                    rng=fixed_rng(0, sample.id), feedback=feedback)
                spent += time.perf_counter() - t0
                clicks += len(curve.clicks)
                rows += [{"run": name, "task": task, "fov": "3M", "start": "click", "feedback": feedback, "id": sample.id,
                          "click": k, "dice": d} for k, d in enumerate(curve.dice)]
            print(f"{name}, feedback {feedback}: {1000 * spent / max(clicks, 1):.1f} ms per corrective click "
                  f"(kernel, decode + rule, {clicks} clicks)", flush=True)
        # the browser's decoder: the exported graph, one decode with a mask input
        import onnxruntime as ort

        graph = export_decoder_onnx(model, work / f"{name}.onnx", samples[0].image.shape[:2])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the book's page decodes on one thread (no cross-origin isolation)
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        grid = 4 * model.sam.prompt_encoder.image_embedding_size[0]
        feed = dict(zip(INPUT_NAMES, (views[0][1][0].features.detach().numpy(), np.array([[[150.5, 150.5], [80.5, 90.5]]], np.float32),
                                      np.array([[1.0, 0.0]], np.float32), np.zeros((1, 1, grid, grid), np.float32),
                                      np.ones(1, np.float32))))
        session.run(None, feed)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
        print(f"{name}: ONNX decode with a mask input, one thread: median {1000 * np.median(times):.1f} ms", flush=True)
        if name in ("FAZ-tiny-mixed", "RV-tiny-global-decoder"):
            for sample in samples:
                q = scan_quality(model, sample.image, "none", sample.pixel_um)
                quality_rows.append({"run": name, "id": sample.id, "dice": dice(q.mask, sample.labels[task]),
                                     "agreement": q.agreement, "predicted_iou": q.predicted_iou})
    curves = pd.DataFrame(rows)
    summary = pd.concat([click_summary(part).assign(run=run) for run, part in curves.groupby("run", sort=False)])
    with pd.option_context("display.width", 220, "display.max_columns", 20):
        print(f"\ncorrective clicks on {len(samples)} held-out synthetic 3M subjects (seed {args.seed}), tiny SAM:")
        print(summary.drop(columns=["start", "fov"]).round(3).to_string(index=False))
        table = []
        for run, part in pd.DataFrame(quality_rows).groupby("run", sort=False):
            for signal in ("agreement", "predicted_iou"):
                c = calibrate(part[signal], part["dice"], 0.1)
                table.append({"run": run, "signal": signal, "mean Dice (prompt-free)": part["dice"].mean(), **c})
        print("\nquality of prompt-free masks (review rate 10 %):")
        print(pd.DataFrame(table).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
