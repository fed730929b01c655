"""Evaluation: per-sample metrics for prompt modes none / global / local, summaries, the paper's tables.

Prompts at evaluation are derived from the ground truth, as in the paper, and fixed per subject
(``samocta.prompts.evaluation_prompt``), so the same run always scores the same. Results are
"prompted (GT-derived)" segmentation; mode "none" (SAM's padding point only) is the prompt-free
baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

MODES = ("none", "global", "local")

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


def data_source(root: str | os.PathLike) -> str:
    """"synthetic" for a tree written by ``samocta.synth.write_octa500``, else "OCTA-500"."""
    root = Path(root)
    return "synthetic" if any(root.glob("synthetic-*.json")) or any(root.glob("*/synthetic-*.json")) else "OCTA-500"


@torch.inference_mode()
def evaluate(
    model: Any,
    index: Any,
    ids: Sequence[int],
    task: str,
    modes: Sequence[str] = MODES,
    seed: int = 0,
    threshold: float = 0.5,
    fold: int | str | None = None,
    spec_overrides: dict | None = None,
    save_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Any:
    """Predictions and per-sample metrics for each prompt mode.

    The image embedding is computed once per subject and decoded once per mode.

    Args:
        model: a ``PromptableSam``/``LoRASam``.
        index: an ``OCTA500`` index; ``ids`` the subjects to score.
        task: the task.
        modes: any of "none", "global", "local".
        seed: evaluation-prompt seed (prompts are fixed per (seed, id)).
        threshold: on probabilities.
        fold: recorded in every row.
        spec_overrides: e.g. ``{"n_pos": 2}`` applied to every mode's ``PromptSpec.paper``.
        save_dir: if given, predicted masks go there as ``<mode>/<id>.png`` ({0, 255}).

    Returns:
        a pandas DataFrame, one row per (subject, mode): id, fold, task, fov, mode, n_points,
        dice, jaccard, precision, recall, cldice, hd95, betti0_error, betti1_error.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from samocta.data import write_grey
    from samocta.metrics import all_metrics
    from samocta.prompts import PromptSpec, evaluation_prompt

    model.eval()
    specs = {m: PromptSpec(**{**PromptSpec.paper(task, m).to_dict(), **(spec_overrides or {}), "mode": m}) for m in modes}
    rows = []
    for sid in tqdm(list(ids), desc=f"evaluate {task}", disable=not progress, leave=False):
        sample = index.load(sid)
        mask = sample.labels[task]
        emb = model.embed(sample.image[None])
        for mode, spec in specs.items():
            prompt = evaluation_prompt(spec, sid, mask, sample.labels, seed)
            out = model.decode(emb, prompt.coords[None], prompt.labels[None])
            pred = (torch.sigmoid(out.logits[0, 0]) > threshold).cpu().numpy()
            rows.append({"id": sid, "fold": fold, "task": task, "fov": sample.fov, "mode": mode, "n_points": len(prompt),
                         **all_metrics(pred, prompt.target)})
            if save_dir is not None:
                write_grey(Path(save_dir) / mode / f"{sid}.png", pred)
    return pd.DataFrame(rows)


def evaluate_run(
    run_dir: str | os.PathLike,
    modes: Sequence[str] = MODES,
    part: str | None = None,
    adapter: str = "best",
    save_masks: bool = False,
    progress: bool = True,
) -> Any:
    """Evaluate a trained fold folder on its split (``part``: "val", "test"; default: test for the
    standard split, val for k-fold) and write ``results-<part>.csv`` and ``summary-<part>.csv`` beside it."""
    from samocta.data import OCTA500, Split
    from samocta.metrics import summarize
    from samocta.train import TrainConfig, build_model, resolve_device

    run_dir = Path(run_dir)
    config = TrainConfig.from_json(run_dir / "config.json")
    split = Split.from_json(run_dir / "split.json")
    part = part or ("test" if config.split == "standard" and split.test else "val")
    model = build_model(config, resolve_device(config.device))
    model.load_adapter(run_dir / f"adapter_{adapter}.safetensors")
    index = OCTA500(config.data, config.fov)
    results = evaluate(
        model, index, getattr(split, part), config.task, modes, seed=config.seed, threshold=config.threshold,
        fold=config.fold if config.split == "kfold" else "standard",
        save_dir=run_dir / f"masks-{part}" if save_masks else None, progress=progress,
    )
    results["data_source"] = data_source(config.data)
    results["model_type"] = config.model
    results["trained_mode"] = config.prompt_mode
    results.to_csv(run_dir / f"results-{part}.csv", index=False)
    summarize(results).to_csv(run_dir / f"summary-{part}.csv")
    (run_dir / f"evaluation-{part}.json").write_text(json.dumps({"part": part, "ids": getattr(split, part), "modes": list(modes), "adapter": adapter}) + "\n")
    return results


def paper_tables(results: Any) -> tuple[Any, Any]:
    """The paper's Table 1 and Table 2 with the measured figures beside the paper's.

    Args:
        results: per-sample rows (``evaluate``/``evaluate_run``), with ``data_source`` and
            ``model_type`` columns (assumed "synthetic"/"tiny"-style labels if absent).

    Returns:
        ``(table1, table2)`` DataFrames. Table 1: the methods' RV/FAZ Dice and Jaccard at 3M/6M,
        plus a row for this run (global prompts) labelled with its data source and model type.
        Table 2: per mode, task and metric, the paper's and this run's values without prompts
        ("none") and with them; cells that were not measured are NaN.
    """
    import pandas as pd

    df = results if isinstance(results, pd.DataFrame) else pd.DataFrame(list(results))
    source = ", ".join(sorted(set(df.get("data_source", pd.Series(["unknown"])).astype(str))))
    model = ", ".join(sorted(set(df.get("model_type", pd.Series(["unknown"])).astype(str))))
    means = df.groupby(["task", "fov", "mode"])[["dice", "jaccard"]].mean()

    def measured(task: str, fov: str, mode: str, metric: str) -> float:
        key = (task, fov, mode)
        return float(means.loc[key, metric]) if key in means.index else float("nan")

    cols = pd.MultiIndex.from_tuples(TABLE1_COLUMNS, names=["task", "FoV", "metric"])
    rows = {name: list(vals) for name, vals in PAPER_TABLE1.items()}
    rows[f"this run ({source}, {model})"] = [measured(t, f, "global", m) for t, f, m in TABLE1_COLUMNS]
    table1 = pd.DataFrame.from_dict(rows, orient="index", columns=cols)

    records = []
    for (mode, task, metric), paper in PAPER_TABLE2.items():
        records.append({
            "mode": mode, "task": task, "metric": metric,
            "paper 3M ×": paper[0], "paper 3M ✓": paper[1], "paper 6M ×": paper[2], "paper 6M ✓": paper[3],
            "measured 3M ×": measured(task, "3M", "none", metric), "measured 3M ✓": measured(task, "3M", mode, metric),
            "measured 6M ×": measured(task, "6M", "none", metric), "measured 6M ✓": measured(task, "6M", mode, metric),
        })
    table2 = pd.DataFrame(records).set_index(["mode", "task", "metric"])
    table2.attrs["measured_on"] = f"{source} data, {model} SAM"
    table1.attrs["measured_on"] = table2.attrs["measured_on"]
    return table1, table2
