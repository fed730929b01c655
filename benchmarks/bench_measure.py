"""Do the measurements from the model's masks agree with those from the labels? Real OCTA-500 3M test subjects.

Run: .venv/bin/python benchmarks/bench_measure.py [DATA] RUN [--no-append]

DATA: the real copy ``shared/real/octa500-3m-rv.sh`` lays out (default: $SAMOCTA_REAL, else
~/.cache/samocta-real/octa500-3m-rv; without it the benchmark says so and stops). RUN: a run trained
on it (``bench_real.py`` trains the default recipe; its folder is printed there). The run's test
subjects are segmented prompt-free by ``samocta.predict.predict_scans`` (what ``predict`` writes); the
same measurement functions (``samocta.measure``) read the labels. For each vessel measurement: the
mean from the labels and from the masks, the Bland-Altman bias and 95 % limits of agreement, and
ICC(2,1) (``samocta.measure.agreement``). This copy has no FAZ label, so the ETDRS grid sits on the
image centre (the scans are centred on the fovea) and there is no FD-300. The table is appended to
benchmarks/RESULTS.md and the Bland-Altman plot of the two densities written to book/figures/ for the
book's results page (a plot of numbers, no image of the data).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import fail, machine, publish, real_fold  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("SAMOCTA_REAL") or Path.home() / ".cache" / "samocta-real" / "octa500-3m-rv")
MEASURES = ("area_density_pct", "density_centre_pct", "density_inner_pct", "density_inner_superior_pct",
            "density_inner_inferior_pct", "density_inner_right_pct", "density_inner_left_pct", "skeleton_density_mm_per_mm2",
            "skeleton_density_inner_mm_per_mm2", "mean_width_um", "fractal_dimension", "skeleton_fractal_dimension")
PLOT = HERE.parent / "book" / "figures" / "bland_altman_real_rv.png"  # shown on the book's results page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="[DATA] RUN")
    parser.add_argument("--no-append", action="store_true",
                        help="print the table only: RESULTS.md and the book's plot stay as they are")
    args = parser.parse_args()
    if len(args.paths) > 2:
        parser.error("give at most two paths: [DATA] RUN")
    data, run = (Path(args.paths[0]), Path(args.paths[1])) if len(args.paths) > 1 else (DEFAULT_DATA, Path(args.paths[0]))
    if not (data / "dataset.json").is_file():
        print(f"bench_measure: no real OCTA copy at {data}; lay it out with shared/real/octa500-3m-rv.sh (skipped)")
        return
    fold, config, split = real_fold("bench_measure", run, data)
    if config.task != "RV":
        fail("bench_measure", f"{run} segments {config.task}; the real copy's labels are large vessels (RV)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from samocta.data import open_dataset
    from samocta.measure import measure
    from samocta.measure.agreement import agreement
    from samocta.measure.regional import regional_measures
    from samocta.predict import load_model, predict_scans

    model = load_model(fold)
    index = open_dataset(data, None, "ILM_OPL", None, label_task="RV")
    # the masks of real scans are written where predict writes them, and removed with the folder: nothing of the
    # real data is left behind
    with tempfile.TemporaryDirectory(prefix="bench-measure-") as out:
        predicted = predict_scans(model, data, out, ids=[str(i) for i in split.test], progress=False).set_index("id")
    rows = []
    for sid in split.test:
        sample = index.load(sid)
        label = sample.labels["RV"]
        pixel_um = index.fov_mm * 1000 / label.shape[1]
        rows.append({"id": sid, **measure(label, "RV", index.fov_mm), **regional_measures(label, "RV", pixel_um)})
    truth = pd.DataFrame(rows).set_index("id")
    predicted.index = predicted.index.astype(str)
    truth.index = truth.index.astype(str)
    table = []
    for name in MEASURES:
        a = agreement(truth.loc[predicted.index, name].to_numpy(), predicted[name].to_numpy())
        table.append(f"| {name} | {a.n} | {a.mean_a:.3f} | {a.mean_b:.3f} | {a.bias:+.3f} | [{a.loa_low:+.3f}, {a.loa_high:+.3f}] | "
                     f"{a.icc21:.3f} |")
    setup = f"tiny SAM at {model.img_size} px, LoRA r={model.rank}" + (" + decoder" if model.train_decoder else "")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, name, title in zip(axes, ("area_density_pct", "density_inner_pct"),
                               ("whole-image vessel area density (%)", "parafoveal (1-3 mm) vessel area density (%)")):
        x, y = truth.loc[predicted.index, name].to_numpy(), predicted[name].to_numpy()
        mean, diff = (x + y) / 2, y - x
        a = agreement(x, y)
        ax.scatter(mean, diff, s=12, color="#1e90ff")
        for level, style in ((a.bias, "-"), (a.loa_low, "--"), (a.loa_high, "--")):
            ax.axhline(level, color="#444444", ls=style, lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("mean of label and model (%)")
        ax.set_ylabel("model - label (percentage points)")
    fig.suptitle(f"Bland-Altman: {len(predicted)} real OCTA-500 3M test subjects (ILM_OPL, large vessels)\n"
                 f"model: {setup}, no prompts; labels: the dataset's large-vessel masks", fontsize=9)
    fig.tight_layout()
    if not args.no_append:  # the book's figure changes only with the table it belongs to
        PLOT.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(PLOT, dpi=110)
    text = "\n".join([
        "",
        f"### Measurements from the model's masks against the labels' ({datetime.date.today().isoformat()})",
        "",
        f"- Data: the public OCTA-500 3M copy (ILM_OPL, large vessels), its {len(predicted)} test subjects; grid on the image "
        "centre (no FAZ label in this copy), 3 x 3 mm: the centre and the parafoveal ring",
        f"- Model: {setup}, the adapter `{fold.name}/adapter_best.safetensors` of `{run.name}`, prompt-free, as `predict` writes",
        f"- Machine: {machine()}; `benchmarks/bench_measure.py DATA RUN`; plot `{PLOT.relative_to(HERE.parent)}`",
        "",
        "| measurement | subjects | mean, labels | mean, model | bias (model - labels) | 95 % limits of agreement | ICC(2,1) |",
        "|---|---|---|---|---|---|---|",
        *table,
        "",
    ])
    publish(text, not args.no_append)


if __name__ == "__main__":
    main()
