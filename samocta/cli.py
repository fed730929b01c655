"""The command line: ``python -m samocta <command>``.

Each command is a thin layer over the package; ``--help`` on any command lists its options.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Sequence

from samocta.core.errors import SamOctaError, exit_status
from samocta.core.options import MAX_SEED, bounded_int
from samocta.data.octa500 import fov_mm_option

MAX_BOOTSTRAP = 100_000  # resamples of the report's intervals: 10,000 is plenty, 100,000 takes seconds per cell


def _check_data(args: argparse.Namespace) -> int:
    from samocta.data import open_dataset
    from samocta.data.folder import LayoutError

    model = None
    if args.adapter is not None:  # the adapter's channels, and its training labels to hold each scan against
        from samocta.predict.scans import adapter_channels, load_model

        model = load_model(args.adapter, args.checkpoint, args.device)
        if args.channels != "auto":
            raise SamOctaError("--channels and --adapter: the adapter says which channels it reads; give one of them")
        args.channels = adapter_channels(model)
    try:
        index = open_dataset(args.root, args.fov, args.channels, args.fov_mm, label_task=args.task)
    except LayoutError as exc:
        print(f"{len(exc.problems)} problem(s) in the layout of {args.root}:")
        for p in exc.problems:
            print(f"  - {p}")
        return 1
    print(index.summary())
    problems = index.validate(check_orientation=not args.no_orientation, progress=sys.stderr.isatty())
    if model is not None and not problems:
        from samocta.predict.scans import check_scans

        problems += check_scans(model, index, progress=sys.stderr.isatty())
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("\nno problems found")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from samocta.synth import FOLDER_LAYOUTS, write_folder, write_octa500

    if args.layout in FOLDER_LAYOUTS:
        projections = [p.strip() for p in args.projections.split(",") if p.strip()]
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        stems = write_folder(args.out, args.n, args.seed, args.fov, args.size, args.fov_mm, projections, tasks, args.layout,
                             args.suffix, args.stems, describe=not args.no_dataset_json)
        print(f"wrote {len(stems)} synthetic subjects ({stems[0]} ... {stems[-1]}) to {args.out} as a folder dataset "
              f"({args.layout} layout, projections {', '.join(projections)}, labels {', '.join(tasks)})")
        return 0
    if args.fov_mm is not None:
        raise SamOctaError(f"--fov-mm is for the folder layouts ({', '.join(FOLDER_LAYOUTS)}); an OCTA-500 tree is 3 or 6 mm "
                           "wide by its --fov")
    ids = write_octa500(args.out, args.fov, args.n, args.seed, layout=args.layout, size=args.size)
    print(f"wrote {len(ids)} synthetic {args.fov} subjects ({ids[0]}-{ids[-1]}) to {args.out} ({args.layout} layout)")
    return 0


def _pretrain_tiny(args: argparse.Namespace) -> int:
    import json

    from samocta.core.options import given_arguments
    from samocta.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(**given_arguments(PretrainConfig, args))
    summary = pretrain(args.out, cfg, device=args.device)
    print(json.dumps(summary, indent=1))
    print(f"weights: {args.out}/sam_tiny.safetensors (copy it and its SHA-256 into samocta/assets to ship it)")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from samocta.core import runs
    from samocta.core.files import atomic_write_csv
    from samocta.decode.modes import EVAL_MODES
    from samocta.decode.session import STARTS
    from samocta.evaluate.clicks import click_summary
    from samocta.evaluate.score import CLICKS, evaluate_run
    from samocta.metrics import summarize

    run = Path(args.run)
    modes = None if args.modes is None else [m.strip() for m in args.modes.split(",") if m.strip()]
    if modes is not None and (not modes or set(modes) - set(EVAL_MODES + (CLICKS,))):
        print(f"error: --modes must list some of {','.join(EVAL_MODES + (CLICKS,))}, separated by commas; got {args.modes!r}",
              file=sys.stderr)
        return 1
    if not 1 <= args.max_clicks <= 100:
        raise SamOctaError(f"--max-clicks is the number of corrective clicks per subject, 1 to 100; got {args.max_clicks}")
    if (args.max_clicks != 10 or args.click_start != STARTS[0] or args.feedback != "auto") and CLICKS not in (modes or []):
        raise SamOctaError("--max-clicks, --click-start and --feedback set the corrective clicks: add clicks to --modes")
    if args.data is None and (args.fov is not None or args.fov_mm is not None):
        raise SamOctaError("--fov and --fov-mm describe the dataset of --data; a run's own data is described by its config")
    # the options first, then the run: a wrong value is told before anything is looked up
    folds = runs.fold_dirs(run)
    if not folds:
        print(f"error: no trained fold under {run} (expected config.json in it or in its fold folders)", file=sys.stderr)
        return 1
    feedback = {"auto": None, "on": True, "off": False}[args.feedback]
    scored = [evaluate_run(fold_dir, modes, part=args.part, adapter=args.select, save_masks=args.save_masks,
                           progress=not args.quiet, data=args.data, fov=args.fov, fov_mm=args.fov_mm,
                           max_clicks=args.max_clicks, click_start=args.click_start, feedback=feedback) for fold_dir in folds]
    on = scored[0].attrs.get("on")  # the other dataset's slug, as each fold's files are named
    if "clicks" in scored[0].attrs:
        curves = pd.concat([s.attrs["clicks"] for s in scored], ignore_index=True)
        clicks = click_summary(curves)
        if len(folds) > 1:
            atomic_write_csv(clicks, runs.click_summary(run, curves["part"].iloc[0], on), index=False)
        print(f"{run}: simulated corrective clicks ({curves['part'].iloc[0]} subjects; start: {args.click_start}; previous "
              f"logits fed back: {'yes' if curves['feedback'].iloc[0] else 'no'}); a subject that never reaches a Dice "
              f"counts as {args.max_clicks} clicks (columns 'not reached'):")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(clicks.drop(columns=["data_source", "setup"], errors="ignore").round(3).to_string(index=False))
    if all(s.empty for s in scored):
        return 0
    results = pd.concat(scored, ignore_index=True)
    summary = summarize(results)
    if len(folds) > 1:
        atomic_write_csv(summary, runs.summary(run, results["part"].iloc[0], on))
    columns = ["dice", "dice_std", "jaccard", "cldice", "hd95", "hd95_um", "hd95_n", "empty_predictions", "empty_targets", "n_subjects"]
    columns += ["n_folds"] if "n_folds" in summary.columns else []
    trained, scored = results["trained_on"].iloc[0], results["scored_on"].iloc[0]
    where = f"trained on {trained}, scored on {scored}" if trained != scored else f"{results['data_source'].iloc[0]} data"
    print(f"{run}: {', '.join(sorted(set(results['setup'])))}; channels {results['channels'].iloc[0]}; {where}; "
          f"{results['part'].iloc[0]} subjects; scored adapter: {'; '.join(sorted(set(results['selection'])))}")
    if (results["split"] == "kfold").any() and args.select == "best":
        print("note: each fold's best epoch was chosen on the validation fold it is scored on (as the reference code "
              "does); --select last scores the last epoch instead")
    if "empty_targets" in summary.columns and summary["empty_targets"].sum():
        print("note: some subjects have an empty target; an empty prediction scores Dice 1 on them (column empty_targets)")
    print("per fold, and over folds (fold 'all': mean and std of the fold means); hd95 in pixels, hd95_um in µm:")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[columns].round(4).to_string())
    return 0


def _predict(args: argparse.Namespace) -> int:
    from samocta.predict.scans import PredictError, load_model, predict_scans

    ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
    if args.ids is not None and not ids:
        raise PredictError(f"--ids takes subject ids (OCTA-500 numbers or file stems) separated by commas, e.g. "
                           f"10301,10302; got {args.ids!r}")
    if not 0 < args.threshold < 1:
        raise PredictError(f"--threshold must lie between 0 and 1, got {args.threshold}")
    if not 0 <= args.review_rate <= 1:
        raise PredictError(f"--review-rate is the share of the scans flagged for review, 0 to 1; got {args.review_rate}")
    model = load_model(args.adapter, args.checkpoint, args.device)
    faz_model = load_model(args.faz_adapter, args.checkpoint, args.device) if args.faz_adapter else None
    print(f"segmenting {model.task} in {args.input} with {args.adapter} ({args.prompts} prompts) into {args.out}", file=sys.stderr)
    table = predict_scans(model, args.input, args.out, args.prompts, ids=ids, fov=args.fov, threshold=args.threshold,
                          overwrite=args.overwrite, progress=not args.quiet, fov_mm=args.fov_mm, review_rate=args.review_rate,
                          eye=args.eye, faz_model=faz_model, report=args.report)
    task = model.task
    print(f"wrote {len(table)} {task} mask(s) and overlays to {args.out}, measurements to {args.out}/measurements.csv"
          + (f", the report to {args.out}/report.html" if args.report else ""))
    from samocta.predict.review import reason_rank

    flagged = table[table["review"]]
    reasoned = flagged[flagged["review_reason"] != ""]
    for sid, reason in sorted(zip(reasoned["id"], reasoned["review_reason"]), key=lambda r: reason_rank(r[1])):
        print(f"to review: {sid}: {reason}")
    rest = flagged[flagged["review_reason"] == ""]
    if len(rest):
        print(f"to review (the {len(rest)} of lowest quality, --review-rate {args.review_rate}): "
              + ", ".join(f"{sid} ({q:.2f})" for sid, q in zip(rest["id"], rest["quality"])))
    return 0


def _resave_adapter(args: argparse.Namespace) -> int:
    from samocta.train.resave import resave_adapters

    for path in resave_adapters(args.run):
        print(f"wrote {path} again, with its digest")
    return 0


def _grid_plan(args: argparse.Namespace, extra: list[str]) -> int:
    from samocta.grid import jobs as grid

    data = {"3M": args.data_3m, "6M": args.data_6m}
    fovs = [f.strip() for f in args.fovs.split(",") if f.strip()]
    if args.data is not None:  # one dataset (a folder dataset, or an OCTA-500 tree of one FoV): its FoV is its own
        from samocta.config import open_data
        from samocta.train.command import parse_train_args, train_config

        if args.data_3m or args.data_6m:
            raise SamOctaError("--data is one dataset; --data-3m and --data-6m are the two FoVs of OCTA-500: give one or the other")
        index = open_data(train_config(parse_train_args(["--data", args.data, *extra])))[1]
        fovs, data = [index.fov], {index.fov: args.data}
    jobs = grid.plan(args.out, [t.strip() for t in args.tasks.split(",") if t.strip()], fovs, data, args.split, args.k, extra)
    finished = sum(grid.status(j) == "finished" for j in jobs)
    print(f"{len(jobs)} jobs planned in {Path(args.out) / grid.GRID} ({finished} finished already)")
    measured = grid.estimate(jobs)
    if measured is None:
        print("no epoch of this grid has run yet: plan again after the first epochs for an estimate of the device-hours")
        return 0
    left, seconds = measured
    print(f"estimate: {left * seconds / 3600:.1f} device-hours for the {left} epochs left, at the {seconds:.0f} s per epoch "
          "this grid's jobs have measured so far")
    return 0


def _grid_run(args: argparse.Namespace) -> int:
    from samocta.grid import jobs as grid

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    states = grid.run_grid(args.runs, gpus, args.workers, progress=not args.quiet)
    counts = {s: list(states.values()).count(s) for s in grid.STATES}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0 if counts["finished"] == len(states) else 1


def _grid_slurm(args: argparse.Namespace) -> int:
    from samocta.grid import jobs as grid

    path = grid.slurm_script(args.runs, args.partition, args.time, args.max_parallel, args.account, args.extra, args.cpus)
    print(f"wrote {path}; submit it with: sbatch {path}  (again later: only unfinished jobs train)")
    return 0


def _grid_job(args: argparse.Namespace) -> int:
    from samocta.grid import jobs as grid

    return grid.run_job(args.runs, args.index)


def _report(args: argparse.Namespace) -> int:
    from samocta.grid.reporting import report

    done = report(args.runs, args.bootstrap, args.seed, progress=not args.quiet)
    print(done.markdown)
    print(f"wrote {args.runs}/report.md, report-per-fold.csv, report-summary.csv and report-across.csv")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from samocta.train import bench

    print(f"device: {bench.describe_machine(args.device)}")
    table = bench.run(args.model, args.device, quick=args.quick, variants=args.variants.split(","))
    from samocta.model import TINY_CONFIG

    print(f"model {args.model}, LoRA rank 4, input {TINY_CONFIG['img_size'] if args.model == 'tiny' else 1024} px"
          f" ({'quick: 2 timed repeats' if args.quick else '10 timed repeats'}, medians):")
    print(table.round(3).to_string())
    if not args.no_extras:
        for name, value in bench.extras(3 if args.quick else 20).items():
            print(f"{name}: {value:.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from samocta.core import runs
    from samocta.core.options import add_arguments
    from samocta.data import FOVS, LAYOUTS, TASKS
    from samocta.decode.modes import EVAL_MODES
    from samocta.decode.session import STARTS
    from samocta.model.build import MODEL_TYPES
    from samocta.synth import FOLDER_LAYOUTS
    from samocta.synth.folders import STEMS
    from samocta.train.bench import VARIANTS
    from samocta.train.command import add_train_arguments, run_train
    from samocta.train.pretrain import PretrainConfig

    parser = argparse.ArgumentParser(prog="python -m samocta", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error as well")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-data", help="validate an OCTA-500 tree (either layout) or a folder dataset; exit 1 on any problem")
    p.add_argument("root", help="dataset folder (or a folder above it)")
    p.add_argument("--fov", choices=FOVS, default=None, help="the part of an OCTA-500 tree; default: the one it holds")
    p.add_argument("--fov-mm", type=fov_mm_option, default=None, help="a folder dataset's scan width in mm (else its dataset.json's)")
    p.add_argument("--task", choices=TASKS, default=None, help="the task of a folder dataset's single label/ folder, if its "
                                                               "dataset.json does not name it")
    p.add_argument("--channels", default="auto", help="what fills SAM's three channels (see train --help); default: auto")
    p.add_argument("--no-orientation", action="store_true", help="skip the label orientation check")
    p.add_argument("--adapter", default=None,
                   help="also segment every scan with this adapter (file or run folder) and hold it against the adapter's "
                        "training labels: a mean vessel width (FAZ area) that contradicts the scans' declared width in mm, "
                        "no signal, no structure found, or a mask unlike the training labels is a problem")
    p.add_argument("--checkpoint", default=None, help="with --adapter: the base checkpoint of an official model")
    p.add_argument("--device", default="auto", help="with --adapter: auto, cpu, cuda or cuda:N; default: auto")
    p.set_defaults(func=_check_data)

    p = sub.add_parser("synth", help="write synthetic OCTA as an OCTA-500 tree or a folder dataset")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--fov", choices=FOVS, default="3M", help="field of view (the anatomy drawn); default: 3M")
    p.add_argument("--n", type=int, default=40, help="number of subjects; default: 40")
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0, help="seed of the generator; default: 0")
    p.add_argument("--layout", choices=LAYOUTS + FOLDER_LAYOUTS, default="official",
                   help="official: the release tree; samocta: the SAM-OCTA code's; flat: images/ + labels/<TASK>/; "
                        "subfolders: images/<PROJECTION>/; split: train/val/test with image/ + label/ (ROSSA's); default: official")
    p.add_argument("--size", type=int, default=None, help="pixels per side (default 304 for 3M, 400 for 6M)")
    p.add_argument("--fov-mm", type=fov_mm_option, default=None, help="folder layouts: the scans' width in mm, 1.5 to 6 for synthetic data; default: the FoV's")
    p.add_argument("--projections", default="ILM_OPL", help="folder layouts: one or three of OPL_BM, ILM_OPL, FULL; default: ILM_OPL")
    p.add_argument("--tasks", default="RV", help=f"folder layouts: labels written, some of {','.join(TASKS)}; default: RV")
    p.add_argument("--suffix", default=".png", help="folder layouts: image format, .png .bmp .tif or .jpg; default: .png")
    p.add_argument("--stems", choices=STEMS, default="id", help="folder layouts: file names 10301, 0001 or scan_0001_OD; default: id")
    p.add_argument("--no-dataset-json", action="store_true", help="folder layouts: write no dataset.json (nothing says the width in mm)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("pretrain-tiny", help="pretrain the tiny SAM on generic shapes (resumes from OUT/last.pt)")
    add_arguments(p, PretrainConfig)
    p.add_argument("--device", default="cpu", help="cpu or cuda; default: cpu")
    p.add_argument("--out", default="runs/pretrain-tiny", help="output folder; default: runs/pretrain-tiny")
    p.set_defaults(func=_pretrain_tiny)

    p = sub.add_parser("train", help="fine-tune SAM with LoRA on one fold (or all folds, or the standard split)",
                       description="Fine-tune SAM with LoRA on one fold. Every option below is a field of TrainConfig, "
                                   "saved with the run in config.json.")
    add_train_arguments(p)
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="score a trained run for prompt modes none / global / local")
    p.add_argument("--run", required=True, help="a run folder (all its folds) or one fold folder")
    p.add_argument("--modes", default=None,
                   help=f"comma-separated, some of {','.join(EVAL_MODES)},clicks (auto: points from the model's own "
                        "prompt-free pass, no label needed; clicks: simulated corrective clicks, Dice per click and "
                        "NoC@85/90); default: none and the mode the run was trained in")
    p.add_argument("--select", choices=typing.get_args(runs.Which), default="best",
                   help="the adapter to score: the epoch with the best validation Dice, or the last epoch")
    p.add_argument("--part", choices=("val", "test", "train", "all"), default=None,
                   help="the run's own val or test subjects (default: test for the standard split, val for k-fold); with "
                        "--data: all of that dataset (default) or a part of its own split")
    p.add_argument("--data", default=None, help="score the run on another dataset (an OCTA-500 root or a folder dataset): "
                                                "trained on A, scored on B")
    p.add_argument("--fov", choices=FOVS, default=None, help="with --data: the part of an OCTA-500 tree")
    p.add_argument("--fov-mm", type=fov_mm_option, default=None, help="with --data: a folder dataset's scan width in mm")
    p.add_argument("--max-clicks", type=int, default=10, help="with --modes ...,clicks: simulated corrective clicks per "
                                                                 "subject, 1 to 100; default: 10")
    p.add_argument("--click-start", choices=STARTS, default=STARTS[0],
                   help="with clicks: start from nothing (click; the first click is the first prompt) or from the "
                        "prompt-free mask (none); default: click")
    p.add_argument("--feedback", choices=("auto", "on", "off"), default="auto",
                   help="with clicks: feed each decode's low-resolution logits back as SAM's mask prompt; auto: as the "
                        "model was trained (official SAM on, the tiny SAM off); default: auto")
    p.add_argument("--save-masks", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_evaluate)

    from samocta.measure import columns_text

    p = sub.add_parser("predict", help="segment scans without labels with a fine-tuned adapter; masks, overlays, measurements",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="the columns of measurements.csv:\n" + columns_text(96))
    p.add_argument("--adapter", required=True, help="an adapter file, or a run or fold folder (its best adapter)")
    p.add_argument("--checkpoint", default=None, help="the base checkpoint for the official models (a path or 'download')")
    p.add_argument("--input", required=True,
                   help="an OCTA-500 root (either layout), a folder dataset or a plain folder of images (labels not "
                        "needed; any size), or a folder of <id>_OPL_BM/_ILM_OPL/_FULL images")
    p.add_argument("--ids", default=None, help="comma-separated subject ids (OCTA-500 numbers or file stems); default: all")
    p.add_argument("--fov", choices=FOVS, default=None, help="the part of an OCTA-500 tree; default: the adapter's")
    p.add_argument("--fov-mm", type=fov_mm_option, default=None,
                   help="the scans' width in mm when no dataset.json says it: scans are brought to the adapter's pixel "
                        "size and measured in mm (without it: scans of the adapter's size only, measured in pixels)")
    p.add_argument("--prompts", default="none",
                   help="none (no points), auto (points from the model's own prompt-free pass) or a JSON file of clicked "
                        "points per subject (as the click widget saves them); default: none")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold; default: 0.5")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N; default: auto")
    p.add_argument("--out", required=True, help="output folder: <GT folder>/<id>.png masks (0/255), overlays/, measurements.csv")
    p.add_argument("--review-rate", type=float, default=0.1,
                   help="the share of the scans flagged review=True in measurements.csv, those of lowest quality "
                        "(agreement of the mask with its mirrored and other-prompt variations); default: 0.1")
    p.add_argument("--eye", choices=("auto", "OD", "OS"), default="auto",
                   help="the eye of every scan, which names the ETDRS grid's nasal and temporal sectors; auto: OD or OS "
                        "in each file name, else unknown (sectors named right and left); default: auto")
    p.add_argument("--faz-adapter", default=None,
                   help="a FAZ adapter (file or run folder): each scan's FAZ, segmented prompt-free, centres the ETDRS "
                        "grid and gives the FD-300; without it the grid is centred on the image")
    p.add_argument("--report", action="store_true",
                   help="also write report/<id>.png (overlay, ETDRS grid, the numbers) and report.html, flagged scans first")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_predict)

    p = sub.add_parser("resave-adapter", help="write a run's adapters again from the run itself, with the digest every "
                                              "adapter must carry (for adapters written without one)")
    p.add_argument("run", help="the run folder (all its folds) or one fold folder; its config.json and data are read")
    p.set_defaults(func=_resave_adapter)

    g = sub.add_parser("grid", help="the paper's whole protocol as independent jobs: plan, run here, or on SLURM")
    gsub = g.add_subparsers(dest="grid_command", required=True, metavar="STEP")
    # no abbreviations: a train option (--fov) must not pass for a grid option (--fovs)
    p = gsub.add_parser("plan", allow_abbrev=False, help="write RUNS/grid.json: one job per task x FoV x fold x trained prompt mode",
                        description="Plan the grid. Options not listed here are train options given to every job "
                                    "(e.g. --model vit_h --checkpoint download --epochs 30).")
    p.add_argument("--tasks", default="RV,FAZ,Capillary,Artery,Vein", help="comma-separated tasks; default: all five")
    p.add_argument("--fovs", default="3M,6M", help="comma-separated fields of view; default: 3M,6M")
    p.add_argument("--split", choices=("kfold", "standard"), default="kfold", help="default: kfold, as the paper")
    p.add_argument("--k", type=int, default=10, help="folds of --split kfold; default: 10")
    p.add_argument("--data-3m", default=None, help="the OCTA-500 root of the 3M scans")
    p.add_argument("--data-6m", default=None, help="the OCTA-500 root of the 6M scans")
    p.add_argument("--data", default=None, help="instead: one dataset (a folder dataset of your own, or one FoV of OCTA-500); "
                                                "its FoV is its own (give --fov-mm among the train options if it has no dataset.json)")
    p.add_argument("--out", required=True, help="the grid folder (RUNS)")
    p.set_defaults(func=_grid_plan, takes_extra=True)
    p = gsub.add_parser("run", help="run the unfinished jobs here: one process per GPU, or --workers on the CPU")
    p.add_argument("runs", help="the grid folder")
    p.add_argument("--gpus", default=None, help="comma-separated GPU numbers, one job on each at a time (e.g. 0,1,2,3)")
    p.add_argument("--workers", type=int, default=1, help="CPU processes when no --gpus; default: 1")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_grid_run)
    p = gsub.add_parser("slurm", help="write RUNS/grid.sbatch: a SLURM job array over the grid, one GPU per task")
    p.add_argument("runs", help="the grid folder")
    p.add_argument("--partition", required=True)
    p.add_argument("--time", required=True, help="time limit per job, as sbatch takes it (e.g. 12:00:00)")
    p.add_argument("--max-parallel", type=int, required=True, help="array tasks running at once")
    p.add_argument("--account", default=None)
    p.add_argument("--cpus", type=int, default=8, help="CPUs per task; default: 8")
    p.add_argument("--extra", action="append", default=[], help="a further '#SBATCH ...' line (repeatable)")
    p.set_defaults(func=_grid_slurm)
    p = gsub.add_parser("job", help="run one job of the grid (a SLURM array task's, or any scheduler's, entry point)")
    p.add_argument("runs", help="the grid folder")
    p.add_argument("--index", type=int, required=True, help="the job's index in grid.json")
    p.set_defaults(func=_grid_job)

    p = sub.add_parser("report", help="score a grid's finished jobs; Table 1 and 2 with the spread over folds and subjects")
    p.add_argument("runs", help="the grid folder")
    p.add_argument("--bootstrap", type=bounded_int(100, MAX_BOOTSTRAP), default=10_000,
                   help=f"bootstrap resamples, 100 to {MAX_BOOTSTRAP:,}; default: 10000")
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0, help="seed of the bootstrap; default: 0")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_report)

    p = sub.add_parser("bench", help="speed and memory of SDPA, checkpointing, AMP and half-precision weights against the baseline")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", choices=MODEL_TYPES, default="tiny")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, some of {','.join(VARIANTS)}")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test of the command)")
    p.add_argument("--no-extras", action="store_true", help="skip the prompt, metric and click figures")
    p.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status.

    A mistake a user can make ends in one ``error:`` line that says what is wrong and how to fix
    it (``--debug`` shows the traceback as well); anything else is a bug and keeps its traceback.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.parse_args(argv)  # the usual message and exit 2 for an unknown option
    call = (args.func, args, extra) if getattr(args, "takes_extra", False) else (args.func, args)
    return exit_status(*call, debug=args.debug, output="--out" if hasattr(args, "out") else None,
                       resumable=hasattr(args, "resume"))
