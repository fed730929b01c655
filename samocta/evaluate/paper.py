"""The paper's Tables 1 and 2, with the measured figures beside the paper's.

In the paper each prompt mode is its own fine-tuned model: Table 2's global rows come from models
trained with global prompts, its local rows from models trained with local prompts, each with its
own "without prompts" cell. ``paper_tables`` keeps it so and never averages runs trained in
different modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import pandas as pd

# SAM-OCTA, Table 1 (OCTA-500, 10-fold CV, GT-derived prompts); the other rows are quoted by the
# paper from Joint-Seg (Hu et al., IEEE TIM 2022).
PAPER_TABLE1 = {
    "U-Net (2015)": (0.9068, 0.8301, 0.8876, 0.7987, 0.9747, 0.9585, 0.8770, 0.8124),
    "IPN (2020)": (0.9062, 0.8325, 0.8864, 0.7973, 0.9505, 0.9091, 0.8802, 0.7980),
    "IPN V2+ (2021)": (0.9274, 0.8667, 0.8941, 0.8095, 0.9755, 0.9532, 0.9084, 0.8423),
    "FARGO (2021)": (0.9112, 0.8374, 0.8798, 0.7864, 0.9785, 0.9587, 0.8930, 0.8355),
    "Joint-Seg (2022)": (0.9113, 0.8378, 0.8972, 0.8117, 0.9843, 0.9693, 0.9051, 0.8424),
    "SAM-OCTA (paper)": (0.9199, 0.8520, 0.8869, 0.7975, 0.9838, 0.9692, 0.9073, 0.8473),
}
TABLE1_COLUMNS = [(t, f, m) for t in ("RV", "FAZ") for f in ("3M", "6M") for m in ("dice", "jaccard")]
# SAM-OCTA, Table 2: (mode, task, metric) -> (3M without prompts, 3M with, 6M without, 6M with)
PAPER_TABLE2 = {
    ("global", "RV", "dice"): (0.9165, 0.9199, 0.8865, 0.8869),
    ("global", "RV", "jaccard"): (0.8431, 0.8520, 0.7955, 0.7975),
    ("global", "FAZ", "dice"): (0.9545, 0.9838, 0.8787, 0.9073),
    ("global", "FAZ", "jaccard"): (0.9345, 0.9692, 0.7991, 0.8473),
    ("global", "Capillary", "dice"): (0.8813, 0.8785, 0.8337, 0.8379),
    ("global", "Capillary", "jaccard"): (0.7881, 0.7837, 0.7152, 0.7213),
    ("global", "Artery", "dice"): (0.8342, 0.8747, 0.8352, 0.8602),
    ("global", "Artery", "jaccard"): (0.7528, 0.7785, 0.7325, 0.7572),
    ("global", "Vein", "dice"): (0.8409, 0.8817, 0.8263, 0.8526),
    ("global", "Vein", "jaccard"): (0.7463, 0.7897, 0.7168, 0.7474),
    ("local", "Artery", "dice"): (0.7393, 0.8707, 0.6865, 0.7922),
    ("local", "Artery", "jaccard"): (0.6339, 0.7792, 0.5699, 0.6851),
    ("local", "Vein", "dice"): (0.7742, 0.8352, 0.7053, 0.8167),
    ("local", "Vein", "jaccard"): (0.6658, 0.7267, 0.5823, 0.7014),
}


def single_value(df: "pd.DataFrame", column: str, what: str) -> str:
    values = sorted(set(df[column].astype(str))) if column in df.columns else ["unknown"]
    if len(values) > 1:
        raise ValueError(f"{what} mixes {column} {values}; make one table per {column}")
    return values[0]


def paper_tables(results: "pd.DataFrame | Sequence[dict]") -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """The paper's Table 1 and Table 2 with the measured figures beside the paper's.

    Each measured cell comes from runs trained in the row's mode: Table 2's (mode, task) row
    takes its "without prompts" (×) and "with prompts" (✓) cells from the runs trained with
    ``mode`` prompts, scored with no prompts and with ``mode`` prompts. Runs trained in another
    mode never enter a row. Table 1's measured row is the global-mode runs scored with global prompts.

    Args:
        results: per-sample rows of ``evaluate_run`` (with ``trained_mode``, ``setup``,
            ``selection``, ``data_source`` and ``model_type``).

    Returns:
        ``(table1, table2)`` DataFrames; cells that were not measured are NaN. Their ``attrs``
        hold ``measured_on`` (data and model) and ``note`` (how the scored epoch was chosen).

    Raises:
        ValueError: the results mix data sources, model types or channels, hold rows scored on
            another dataset than trained on, lack ``trained_mode``, or one cell would average runs
            of different set-ups or epoch selections.
    """
    import pandas as pd

    df = results if isinstance(results, pd.DataFrame) else pd.DataFrame(list(results))
    if "trained_mode" not in df.columns:
        raise ValueError("paper_tables needs a trained_mode column (the rows of evaluate_run have it)")
    source = single_value(df, "data_source", "the results")
    model = single_value(df, "model_type", "the results")
    channels = single_value(df, "channels", "the results") if "channels" in df.columns else "OPL_BM, ILM_OPL, FULL"
    if {"trained_on", "scored_on"} <= set(df.columns) and (df["trained_on"].astype(str) != df["scored_on"].astype(str)).any():
        raise ValueError("the results hold scores on another dataset than the one trained on (trained on A, scored on B); "
                         "the paper's tables take each run's scores on its own data: keep those rows apart")

    def cell(rows: "pd.DataFrame", metric: str, what: str) -> float:
        if rows.empty:
            return float("nan")
        single_value(rows, "setup", what)
        single_value(rows, "selection", what)
        return float(rows[metric].mean())

    def measured(trained: str, task: str, fov: str, mode: str, metric: str) -> float:
        rows = df[(df["trained_mode"] == trained) & (df["task"] == task) & (df["fov"] == fov) & (df["mode"] == mode)]
        return cell(rows, metric, f"the cell ({task}, {fov}, trained {trained}, scored {mode})")

    cols = pd.MultiIndex.from_tuples(TABLE1_COLUMNS, names=["task", "FoV", "metric"])
    rows = {name: list(vals) for name, vals in PAPER_TABLE1.items()}
    rows[f"this run ({source}, {model}, channels {channels})"] = [measured("global", t, f, "global", m) for t, f, m in TABLE1_COLUMNS]
    table1 = pd.DataFrame.from_dict(rows, orient="index", columns=cols)

    records = []
    for (mode, task, metric), paper in PAPER_TABLE2.items():
        records.append({
            "mode": mode, "task": task, "metric": metric,
            "paper 3M ×": paper[0], "paper 3M ✓": paper[1], "paper 6M ×": paper[2], "paper 6M ✓": paper[3],
            "measured 3M ×": measured(mode, task, "3M", "none", metric), "measured 3M ✓": measured(mode, task, "3M", mode, metric),
            "measured 6M ×": measured(mode, task, "6M", "none", metric), "measured 6M ✓": measured(mode, task, "6M", mode, metric),
        })
    table2 = pd.DataFrame(records).set_index(["mode", "task", "metric"])
    selections = sorted(set(df["selection"].astype(str))) if "selection" in df.columns else []
    note = "; ".join(
        f"scored adapter: {s}" + (" (optimistic, as the reference code scores k-fold runs; evaluate with adapter='last' "
                                  "or --select last for an unbiased figure)" if "same validation" in s else "")
        for s in selections
    )
    for table in (table1, table2):
        table.attrs["measured_on"] = (f"{source} data, {model} SAM, channels {channels}, each mode's row from models trained "
                                      "in that mode")
        table.attrs["note"] = note
    return table1, table2
