"""One report for a grid: every finished job scored, the paper's two tables with the spread.

``report(RUNS)`` evaluates each finished job of ``RUNS/grid.json`` that has not been scored yet
(without prompts and with the prompts of the mode it was trained in, on its fold's validation
subjects, or the test subjects of the standard split), then writes

- ``report-per-fold.csv``: one row per job and scored mode (a job that is not finished keeps its
  row, with its state and empty metrics);
- ``report-summary.csv``: per task, FoV, trained mode and scored mode the mean and standard
  deviation over folds, a 95 % bootstrap confidence interval of the mean over subjects, and the
  number of folds and subjects behind them;
- ``report.md``: Table 1 and Table 2 in the paper's layout with those figures, the jobs that are
  missing or failed, and, for jobs also scored on other datasets (``evaluate --data``), a table of
  those scores, each row labelled "trained on A, scored on B" (``report-across.csv``).

Cells no finished job fills stay empty; nothing is averaged across trained modes, models, channels
or data, and a score on another dataset never enters the paper's tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samocta.core import runs
from samocta.core.errors import SamOctaError
from samocta.core.files import atomic_write_csv, atomic_write_text, read_bytes, spreadsheet_text
from samocta.grid import jobs as grid

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("dice", "jaccard")
# the columns of evaluate_run's rows that say what was scored, by which model, on which data
DESCRIBED = ("data_source", "model_type", "channels", "trained_mode", "trained_on", "scored_on", "setup", "split", "part",
             "selection")
KEYS = ["task", "fov", "trained_mode", "mode"]


@dataclass
class Report:
    """What ``report`` wrote: the per-fold rows, the summary and the jobs that are not finished."""

    per_fold: "pd.DataFrame"
    summary: "pd.DataFrame"
    unfinished: dict[str, str]
    markdown: str
    across: "pd.DataFrame | None" = None  # scores on other datasets, "trained on A, scored on B"


def bootstrap_ci(values: np.ndarray, n: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling subjects with replacement)."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def _scored(job: grid.Job) -> "pd.DataFrame":
    """A finished job's per-subject results, evaluating it first if it has not been."""
    from samocta.config import TrainConfig
    from samocta.data import Split
    from samocta.evaluate.score import evaluate_run

    fold = Path(job.fold_dir)
    part = "val" if TrainConfig.from_json(fold / runs.CONFIG).split == "kfold" else "test"
    path = runs.results(fold, part)
    results = _read_results(path)
    if results is not None:  # a table cut at a row boundary reads as one: every subject in every mode, or scored again
        ids = {str(spreadsheet_text(str(i))) for i in getattr(Split.from_json(fold / runs.SPLIT), part)}
        modes = {"none", job.mode}
        have = set(zip(results["id"].astype(str), results["mode"].astype(str)))
        results = results if have >= {(i, m) for i in ids for m in modes} else None
    if results is None:  # not scored yet, or its file torn or edited: scored (again), the file rewritten
        results = evaluate_run(fold, ["none", job.mode], part=part, progress=False)
    return results.assign(job=job.id, job_fold=job.fold)


def _read_results(path: Path) -> "pd.DataFrame | None":
    """A results file ``evaluate_run`` wrote, or None if it is missing or not such a table."""
    import io

    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(read_bytes(path, "results table", "", 256 << 20)))
    except (SamOctaError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    # a row torn mid-line reads with its last columns empty: what says where a score came from must be whole
    described = ["id", "mode", "dice", *METRICS, *(c for c in DESCRIBED if c in frame.columns)]
    if not {"id", "mode", "dice", *METRICS} <= set(frame.columns) or frame[described].isna().any().any():
        return None
    return frame


def _across(job: grid.Job) -> list["pd.DataFrame"]:
    """A finished job's scores on other datasets (``results-<part>-on-<data>.csv``), as written by ``evaluate --data``."""
    frames = [(path, _read_results(path)) for path in runs.cross_results(job.fold_dir)]
    torn = [str(path) for path, frame in frames if frame is None]
    if torn:
        raise grid.GridError(f"{torn[0]}: not a results table (torn or edited); score that dataset again with "
                             f"python -m samocta evaluate --run {job.fold_dir} --data ...")
    return [frame.assign(job=job.id, job_fold=job.fold) for _, frame in frames]


def across_table(frames: list["pd.DataFrame"], n_bootstrap: int, seed: int) -> "pd.DataFrame":
    """Per (trained on, scored on, task, trained mode, scored mode): mean and spread over folds, the
    bootstrap interval over subjects, and the counts."""
    import pandas as pd

    if not frames:
        return pd.DataFrame(columns=["trained_on", "scored_on", "task", "trained_mode", "mode"])
    df = pd.concat(frames, ignore_index=True)
    rows = []
    for key, part in df.groupby(["trained_on", "scored_on", "task", "trained_mode", "mode"], sort=False):
        folds = part.groupby("job")["dice"].mean()
        low, high = bootstrap_ci(part["dice"].to_numpy(), n_bootstrap, seed)
        rows.append(dict(zip(["trained_on", "scored_on", "task", "trained_mode", "mode"], key),
                         channels=str(part["channels"].iloc[0]) if "channels" in part else "", dice_mean=folds.mean(),
                         dice_std=folds.std(ddof=1) if len(folds) > 1 else np.nan, dice_ci_low=low, dice_ci_high=high,
                         jaccard_mean=part.groupby("job")["jaccard"].mean().mean(), n_folds=len(folds), n_subjects=len(part)))
    return pd.DataFrame(rows)


def _cell(value: float, std: float, low: float, high: float, folds: int) -> str:
    if np.isnan(value):
        return ""
    spread = f" ± {std:.4f}" if folds > 1 else f" ({folds} fold)"
    return f"{value:.4f}{spread} [{low:.4f}, {high:.4f}]"


def report(out: str | os.PathLike, n_bootstrap: int = 10_000, seed: int = 0, progress: bool = True) -> Report:
    """Score what is finished, write the report files into ``out`` and return them.

    Raises:
        GridError: no readable plan in ``out``, or ``n_bootstrap`` outside 100 .. 100,000.
    """
    import pandas as pd

    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or not 100 <= n_bootstrap <= 100_000:
        raise grid.GridError(f"the bootstrap (--bootstrap) takes 100 to 100,000 resamples; got {n_bootstrap!r}")

    from samocta.evaluate.paper import PAPER_TABLE1, PAPER_TABLE2, TABLE1_COLUMNS, single_value

    out = Path(out)
    jobs = grid.load(out)
    per_subject, rows, unfinished, across = [], [], {}, []
    for job in jobs:
        state = grid.status(job)
        if state != "finished":
            unfinished[job.id] = state
            for mode in dict.fromkeys(("none", job.mode)):
                rows.append({"job": job.id, "task": job.task, "fov": job.fov, "trained_mode": job.mode, "mode": mode,
                             "fold": job.fold, "state": state})
            continue
        results = _scored(job)
        across += _across(job)
        if progress:
            print(f"scored {job.id}", flush=True)
        per_subject.append(results)
        for mode, part in results.groupby("mode", sort=False):
            rows.append({"job": job.id, "task": job.task, "fov": job.fov, "trained_mode": job.mode, "mode": mode,
                         "fold": job.fold, "state": state, **{m: float(part[m].mean()) for m in METRICS},
                         "n_subjects": len(part)})
    per_fold = pd.DataFrame(rows)
    for column in (*METRICS, "n_subjects"):
        if column not in per_fold.columns:
            per_fold[column] = np.nan
    scored = pd.concat(per_subject, ignore_index=True) if per_subject else pd.DataFrame(columns=[*KEYS, *METRICS])
    source = single_value(scored, "data_source", "the grid") if len(scored) else "no"
    model = single_value(scored, "model_type", "the grid") if len(scored) else "no"
    channels = single_value(scored, "channels", "the grid") if "channels" in scored.columns and len(scored) else "OPL_BM, ILM_OPL, FULL"
    across_df = across_table(across, n_bootstrap, seed)

    summary_rows = []
    for key, planned in per_fold.groupby(KEYS, sort=False):
        done = planned.dropna(subset=["dice"])
        subjects = scored
        for column, value in zip(KEYS, key):
            subjects = subjects[subjects[column] == value]
        record = dict(zip(KEYS, key), folds_planned=len(planned), n_folds=len(done), n_subjects=len(subjects))
        for metric in METRICS:
            low, high = bootstrap_ci(subjects[metric].to_numpy(), n_bootstrap, seed)
            record.update({f"{metric}_mean": done[metric].mean() if len(done) else np.nan,
                           f"{metric}_std": done[metric].std(ddof=1) if len(done) > 1 else np.nan,
                           f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        summary_rows.append(record)
    summary = pd.DataFrame(summary_rows)

    def cell(task: str, fov: str, trained: str, mode: str, metric: str) -> str:
        hit = summary[(summary["task"] == task) & (summary["fov"] == fov) & (summary["trained_mode"] == trained)
                      & (summary["mode"] == mode)]
        if hit.empty:
            return ""
        r = hit.iloc[0]
        return _cell(r[f"{metric}_mean"], r[f"{metric}_std"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"], int(r["n_folds"]))

    table1 = ["| method | " + " | ".join(f"{t} {f} {m}" for t, f, m in TABLE1_COLUMNS) + " |",
              "|---|" + "---|" * len(TABLE1_COLUMNS)]
    table1 += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |" for name, values in PAPER_TABLE1.items()]
    table1.append(f"| this grid ({source} data, {model} SAM, channels {channels}) | "
                  + " | ".join(cell(t, f, "global", "global", m) for t, f, m in TABLE1_COLUMNS) + " |")
    table2 = ["| trained and scored mode | task | metric | paper 3M × | paper 3M ✓ | 3M × | 3M ✓ | paper 6M × | paper 6M ✓ | 6M × | 6M ✓ |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (mode, task, metric), paper in PAPER_TABLE2.items():
        table2.append(f"| {mode} | {task} | {metric} | {paper[0]:.4f} | {paper[1]:.4f} | {cell(task, '3M', mode, 'none', metric)} | "
                      f"{cell(task, '3M', mode, mode, metric)} | {paper[2]:.4f} | {paper[3]:.4f} | "
                      f"{cell(task, '6M', mode, 'none', metric)} | {cell(task, '6M', mode, mode, metric)} |")
    lines = [
        f"# Grid report: {out.name}",
        "",
        f"{len(jobs) - len(unfinished)} of {len(jobs)} jobs finished and scored; {source} data, {model} SAM, channels "
        f"{channels}. Each cell: the "
        "mean over folds ± the standard deviation over folds [95 % bootstrap confidence interval of the mean over "
        f"subjects, {n_bootstrap} resamples, seed {seed}]; × without prompts, ✓ with the prompts of the mode the row's "
        "models were trained in. Empty: no finished job for that cell.",
        "",
        *[f"Scored adapter: {s}." for s in (sorted(set(scored["selection"].astype(str))) if "selection" in scored else [])],
        "",
        "## Table 1: prompted segmentation against earlier OCTA-500 methods (global mode)",
        "",
        *table1,
        "",
        "## Table 2: without and with prompts",
        "",
        *table2,
        "",
        "## Jobs not finished",
        "",
        *([f"- {job_id}: {state}" for job_id, state in unfinished.items()] or ["none"]),
        "",
        "## Across datasets",
        "",
        *(["Finished jobs scored on another dataset than the one they were trained on (evaluate --data); Dice: mean over "
           "folds ± std over folds [95 % bootstrap interval over subjects]. These never enter the tables above.", "",
           "| trained on, scored on | task | trained / scored mode | channels | Dice | Jaccard | folds | subjects |",
           "|---|---|---|---|---|---|---|---|"]
          + [f"| trained on {r.trained_on}, scored on {r.scored_on} | {r.task} | {r.trained_mode} / {r.mode} | {r.channels} | "
             f"{_cell(r.dice_mean, r.dice_std, r.dice_ci_low, r.dice_ci_high, int(r.n_folds))} | {r.jaccard_mean:.4f} | "
             f"{int(r.n_folds)} | {int(r.n_subjects)} |" for r in across_df.itertuples()]
          if len(across_df) else ["none (score a finished job on another dataset with python -m samocta evaluate --run FOLD "
                                  "--data OTHER)"]),
        "",
    ]
    markdown = "\n".join(lines)
    atomic_write_csv(per_fold, out / "report-per-fold.csv", index=False)
    atomic_write_csv(summary, out / "report-summary.csv", index=False)
    atomic_write_csv(across_df, out / "report-across.csv", index=False)
    atomic_write_text(out / "report.md", markdown)
    return Report(per_fold, summary, unfinished, markdown, across_df)
