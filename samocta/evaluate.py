"""Evaluation: per-sample metrics for prompt modes none / global / local, summaries, the paper's tables.

Prompts at evaluation are derived from the ground truth, as in the paper, and fixed per subject
(``samocta.prompts.evaluation_prompt``), so the same run always scores the same. Results are
"prompted (GT-derived)" segmentation; mode "none" (SAM's padding point only) is the prompt-free
baseline.

One scorer: ``evaluate`` is what training's validation calls too, so the validation Dice of an
epoch equals what ``evaluate_run(run, part="val")`` reports for that epoch's adapter in the run's
prompt mode. Each model decodes with its own mask rule (``PromptableSam.mask_rule``).

In the paper each prompt mode is its own fine-tuned model: Table 2's global rows come from models
trained with global prompts, its local rows from models trained with local prompts, each with its
own "without prompts" cell. ``paper_tables`` keeps it so and never averages runs trained in
different modes; a model scored in a mode it was not trained in keeps its ``trained_mode`` beside
the ``mode`` it was scored in, in every row and summary.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np
import torch

from samocta import runs
from samocta.errors import InputError
from samocta.model.promptable import binarize
from samocta.prompts import MODES, Prompt, PromptSpec, label_tasks
from samocta.resample import Resampling
from samocta.views import decode_points, scan_views

if TYPE_CHECKING:
    import pandas as pd

    from samocta.data import Dataset, Sample
    from samocta.model import Embedding, MaskOutput, PromptableSam

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


# What a model can be scored with: no points, points from the label (global, local), or "auto":
# points the model draws from its own prompt-free pass (no label needed; see ``auto_prompt``).
EVAL_MODES = MODES + ("auto",)
CLICKS = "clicks"
"""Not a prompt mode but a protocol: simulated corrective clicks (``samocta.clicks``), scored per click."""


class AutoPromptFallback(UserWarning):
    """An automatic prompt found no confident region: the prompt-free result stands."""


AUTO_FALLBACK = "auto prompt: no confident region in the prompt-free pass; its result stands"


def prompt_specs(task: str, modes: Sequence[str] | Mapping[str, PromptSpec]) -> dict[str, PromptSpec]:
    """The prompt recipe of each mode: as given, or the paper's for the task ("auto" draws global-mode
    counts from the model's own confident regions)."""
    if isinstance(modes, Mapping):
        return dict(modes)
    unknown = [m for m in modes if m not in EVAL_MODES]
    if unknown or not modes:
        raise InputError(f"prompt modes must be some of {EVAL_MODES}, got {list(modes)}")
    return {m: PromptSpec.paper(task, "global" if m == "auto" else m) for m in modes}


def _auto(model: "PromptableSam", embedding: "Embedding", spec: PromptSpec, rng: np.random.Generator,
          fallback_warning: bool = True) -> tuple[Prompt, "MaskOutput"]:
    from samocta.prompts import confident_points

    first = model.decode_unprompted(embedding)
    probability = torch.sigmoid(first.logits[0, 0].float()).cpu().numpy()
    points = confident_points(probability, spec.n_pos, spec.n_neg, rng, max_points=spec.max_points)
    if len(points) == 0:
        if fallback_warning:
            warnings.warn(AutoPromptFallback(AUTO_FALLBACK),
                          stacklevel=3)
        return points, first
    return points, model.decode(embedding, [points.coords], [points.labels])


def auto_prompt(
    model: "PromptableSam", embedding: "Embedding", spec: PromptSpec, rng: np.random.Generator, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two passes without a label: a prompt-free pass, points drawn from its confident regions
    (``samocta.prompts.confident_points`` with the spec's counts), then a prompted pass.

    Returns:
        ``(coords, labels, mask)``: the points (none when nothing was confident: then the mask is
        the prompt-free one, and an ``AutoPromptFallback`` warning says so) and the bool mask.
    """
    points, out = _auto(model, embedding, spec, rng)
    return points.coords, points.labels, out.masks(threshold)[0]


def decode_auto(model: "PromptableSam", resampling: Resampling, embeddings: list, spec: PromptSpec,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """``auto_prompt`` on each view: the points drawn (in the scan's frame) and the logits at the scan's size."""
    outs, coords, labels = [], [], []
    for view, embedding in zip(resampling.views, embeddings):
        points, out = _auto(model, embedding, spec, rng, fallback_warning=False)
        outs.append(out.logits)
        coords.append(resampling.points_from_view(points.coords, view))
        labels.append(np.asarray(points.labels, np.int64))
    coords, labels = np.concatenate(coords), np.concatenate(labels)
    if len(labels) == 0:
        warnings.warn(AutoPromptFallback(AUTO_FALLBACK),
                      stacklevel=2)
    return coords, labels, resampling.merge(outs)


def decode_prompt(model: "PromptableSam", resampling, embeddings: list, prompt: "str | tuple[np.ndarray, np.ndarray]",
                  rng: np.random.Generator) -> torch.Tensor:
    """One scan's logits ``(1, 1, H, W)`` for one way of prompting it, from its view embeddings
    (``samocta.views.scan_views``): "none", "auto" (the recipe evaluate scores "auto" with) or clicked
    points ``(coords, labels)``, decoded one after another as the click canvas decodes them
    (``samocta.clicks.ClickSession``). The one decode of ``predict`` and of its quality check."""
    from samocta.clicks import ClickSession

    if isinstance(prompt, str) and prompt == "auto":
        spec = prompt_specs(getattr(model, "task", None), ["auto"])["auto"]
        return decode_auto(model, resampling, embeddings, spec, rng)[2]
    if isinstance(prompt, str) and prompt == "none":
        return decode_points(model, resampling, embeddings, np.zeros((0, 2), np.float32), np.zeros(0, np.int64))
    coords, labels = prompt
    if np.asarray(labels).size == 0:
        return decode_points(model, resampling, embeddings, coords, labels)
    return ClickSession(model, resampling, embeddings).decode(coords, labels)


@torch.inference_mode()
def predict_modes(
    model: "PromptableSam", sample: "Sample", task: str, specs: Mapping[str, PromptSpec], seed: int = 0, threshold: float = 0.5
) -> Iterator[tuple[str, Prompt, np.ndarray]]:
    """One subject's fixed evaluation prompt and predicted mask for each mode, from one embedding per view.

    A subject of another pixel size than the model's training images is resampled to it and its
    masks come back at its own size (``samocta.resample``); prompts are drawn from its own label.

    Yields:
        ``(mode, prompt, mask)``: the prompt (its ``target`` is what it asks for) and the bool
        ``(H, W)`` mask, decoded with the model's own mask rule and thresholded at ``threshold``.
    """
    from samocta.prompts import evaluation_prompt, fixed_rng

    model.eval()
    resampling, embeddings = scan_views(model, sample.image, sample.pixel_um, f"subject {sample.id}")
    for mode, spec in specs.items():
        if mode == "auto":  # no label: points from the model's own prompt-free pass; scored on the whole label
            coords, labels, logits = decode_auto(model, resampling, embeddings, spec, fixed_rng(seed, sample.id))
            yield mode, Prompt(coords, labels, sample.labels[task]), binarize(logits, threshold)[0]
            continue
        prompt = evaluation_prompt(spec, sample.id, sample.labels[task], sample.labels, seed)
        yield mode, prompt, binarize(decode_points(model, resampling, embeddings, prompt.coords, prompt.labels), threshold)[0]


def evaluate(
    model: "PromptableSam",
    index: "Dataset",
    ids: Sequence,
    task: str,
    modes: Sequence[str] | Mapping[str, PromptSpec] = MODES,
    seed: int = 0,
    threshold: float = 0.5,
    fold: int | str | None = None,
    save_dir: str | os.PathLike | None = None,
    progress: bool = True,
    samples: Mapping[int, "Sample"] | None = None,
) -> "pd.DataFrame":
    """Predictions and per-sample metrics for each prompt mode.

    The image embedding is computed once per subject and decoded once per mode.

    Args:
        model: a ``PromptableSam``/``LoRASam``; it decodes with its own ``mask_rule``.
        index: a dataset index (``samocta.data.open_dataset``); ``ids`` the subjects to score.
        task: the task.
        modes: some of "none", "global", "local", "auto" (the paper's recipe for each), or a
            mapping of mode to ``PromptSpec`` (a run's own recipe).
        seed: evaluation-prompt seed (prompts are fixed per (seed, id)).
        threshold: on probabilities.
        fold: recorded in every row.
        save_dir: if given, predicted masks go there as ``<mode>/<id>.png`` ({0, 255}).
        samples: subjects already read (training's validation reads them once per run), by id.

    Returns:
        a pandas DataFrame, one row per (subject, mode): id, fold, task, fov, mode, n_points,
        pred_pixels, target_pixels, dice, jaccard, precision, recall, cldice, hd95 (px),
        betti0_error, betti1_error, hd95_um (HD95 in µm from the subject's pixel size; NaN when its
        width in mm is unknown). Masks and scores are at each subject's own size.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from samocta.data import write_grey
    from samocta.metrics import all_metrics

    specs = prompt_specs(task, modes)
    rows = []
    for sid in tqdm(list(ids), desc=f"evaluate {task}", disable=not progress, leave=False):
        sample = samples[sid] if samples and sid in samples else index.load(sid, tasks=label_tasks(task, index.tasks))
        pixel_um = sample.pixel_um if sample.pixel_um is not None else float("nan")
        for mode, prompt, pred in predict_modes(model, sample, task, specs, seed, threshold):
            scores = all_metrics(pred, prompt.target)
            rows.append({"id": sid, "fold": fold, "task": task, "fov": sample.fov, "mode": mode, "n_points": len(prompt),
                         "pred_pixels": int(pred.sum()), "target_pixels": int(prompt.target.sum()),
                         **scores, "hd95_um": scores["hd95"] * pixel_um})
            if save_dir is not None:
                write_grey(Path(save_dir) / mode / f"{sid}.png", pred)
    return pd.DataFrame(rows)


def selection_label(split: str, part: str, adapter: str) -> str:
    """What the scored adapter is, in words (k-fold 'best' on 'val' is chosen on the data it is scored on)."""
    if adapter == "last":
        return "last epoch"
    if part == "val":
        return "best epoch, chosen on the same validation subjects it is scored on"
    return "best epoch on the validation subjects"


def run_setup(config) -> str:
    """The fine-tuning set-up of a run in a few words: model (the tiny SAM with its input side), what was
    trained, mask rule, loss."""
    trained = f"LoRA r={config.rank}" + (" + decoder" if config.train_decoder else "")
    from samocta.model.build import TINY_CONFIG

    model = f"tiny {config.input_size or TINY_CONFIG['img_size']} px" if config.model == "tiny" else config.model
    return f"{model}, {trained}, {config.mask_rule} mask, {config.loss_preset} loss"


def evaluate_run(
    run_dir: str | os.PathLike,
    modes: Sequence[str] | None = None,
    part: str | None = None,
    adapter: runs.Which = "best",
    save_masks: bool = False,
    progress: bool | str = True,
    data: str | os.PathLike | None = None,
    fov: str | None = None,
    fov_mm: float | None = None,
    max_clicks: int = 10,
    click_start: str = "click",
    feedback: bool | None = None,
) -> "pd.DataFrame":
    """Evaluate a trained fold folder on its split, or on another dataset's subjects, and write the
    per-subject results and their summary beside it.

    Args:
        run_dir: a fold folder written by ``train_fold``.
        modes: prompt modes to score (default: "none" and the mode the run was trained in). The
            run's own prompt recipe is used for its trained mode, the paper's for the others.
            ``CLICKS`` ("clicks") adds simulated corrective clicks (``samocta.clicks.evaluate_clicks``):
            per-click rows in ``clicks-<part>.csv``, their summary (Dice at 1/3/5/10 clicks,
            NoC@85/90) in ``clicks-summary-<part>.csv``, both also in ``attrs["clicks"]`` and
            ``attrs["click_summary"]``.
        part: "val" or "test" of the run's split (default: test for the standard split, val for
            k-fold, as the reference code scores k-fold runs); with ``data``: "all" (default), or a
            part of that dataset's own split.
        adapter: "best" (the epoch with the best validation Dice) or "last".
        progress: True: say what is scored, then a progress bar; "lines": the first only; False: silent.
        data: another dataset to score the run on ("trained on A, scored on B": 3M -> 6M, OCTA-500 ->
            a folder dataset, ...); scans of another pixel size are brought to the run's
            (``samocta.resample``). OCTA-500 subjects the run trained or validated on (the same number in
            another copy of OCTA-500) are left out.
        fov, fov_mm: for ``data``, as ``open_dataset`` takes them.
        max_clicks, click_start, feedback: the corrective clicks' count, start and mask feedback
            (``samocta.clicks.click_curve``).

    Returns:
        the per-sample rows of ``evaluate`` plus the run's data_source, model_type, channels,
        trained_mode, trained_on, scored_on, setup, split, part and selection. Written to
        ``results-<part>.csv`` (another dataset: ``results-<part>-on-<slug>.csv``, the slug in
        ``attrs["on"]``) with its summary.
    """
    from samocta.data import Split, channels_label, dataset_slug, same_dataset
    from samocta.data import fov_of, id_seed
    from samocta.data.source import open_for_adapter
    from samocta.files import atomic_write_csv, atomic_write_text
    from samocta.metrics import summarize
    from samocta.model import build_model
    from samocta.config import TrainConfig, open_data
    import pandas as pd

    adapter_file = runs.adapter(run_dir, adapter)
    run_dir = Path(run_dir)
    config = TrainConfig.from_json(run_dir / runs.CONFIG)
    split = Split.from_json(run_dir / runs.SPLIT)
    modes = list(modes) if modes is not None else ["none", config.prompt_mode]
    clicks = CLICKS in modes
    modes = [m for m in modes if m != CLICKS]
    if clicks:  # checked before any work starts
        from samocta.clicks import STARTS

        if max_clicks < 1 or click_start not in STARTS:
            raise InputError(f"--max-clicks must be at least 1 and --click-start one of {', '.join(STARTS)}; "
                             f"got {max_clicks} and {click_start!r}")
    specs = prompt_specs(config.task, list(dict.fromkeys(modes))) if modes or not clicks else {}
    if config.prompt_mode in specs:  # the run's own recipe for the mode it was trained in
        specs[config.prompt_mode] = config.prompt_spec()
    model = build_model(config)
    # adapters written before the metadata named the rule and task take them from the run's config
    model.load_adapter(adapter_file, defaults={"mask_rule": config.mask_rule, "task": config.task})
    own = None
    if data is None:
        config, own = open_data(config)
        index = own
    else:
        index = open_for_adapter(data, config.channels, fov, fov_mm, label_task=config.task)
        if Path(config.data).expanduser().is_dir():  # the run's own data, by another path: scored as its own
            candidate = open_data(config)[1]
            own = candidate if same_dataset(index, candidate) else None
    trained_on = model.trained_with.get("dataset") or (own.name if own else str(config.data))
    cross = own is None
    if not cross:
        part = part or ("test" if config.split == "standard" and split.test else "val")
        if part not in ("val", "test"):
            raise InputError(f"--part of a run's own data is val or test (its training subjects are not scored); got {part!r}")
        ids, note = list(getattr(split, part)), ""
    else:
        part = part or "all"
        if part == "all":
            ids = list(index.ids)
        else:
            own_split = index.own_split()
            if own_split is None or part not in ("train", "val", "test"):
                raise InputError(f"{index.where} has no split of its own; score --part all of it")
            ids = list(getattr(own_split, part))
        # an OCTA-500 subject number the run trained or validated on is the same eye in another copy of
        # OCTA-500 (the single-projection copy, the other layout): left out; other datasets' numbers are theirs
        seen = {id_seed(j) for j in split.train + split.val if fov_of(id_seed(j)) is not None}
        kept = [i for i in ids if id_seed(i) not in seen]
        note = (f"; {len(ids) - len(kept)} OCTA-500 subject(s) the run trained or validated on left out"
                if len(kept) < len(ids) else "")
        ids = kept
        if not ids:
            raise InputError(f"no subject of {index.where} is left to score{note}")
    on = dataset_slug(index) if cross else None
    if progress:
        device = next(model.parameters()).device
        print(f"scoring {adapter_file} ({config.model}, {config.task}, trained with {config.prompt_mode} prompts on "
              f"{trained_on}, channels {channels_label(config.channels)}) on {len(ids)} {part} subjects of {index.name} "
              f"at {index.where}{note}, prompt modes {', '.join([*specs, *[CLICKS] * clicks])}, on {device}", flush=True)
    fold = config.fold if config.split == "kfold" else "standard"
    results = evaluate(
        model, index, ids, config.task, specs, seed=config.seed, threshold=config.threshold, fold=fold,
        save_dir=runs.masks(run_dir, part, on) if save_masks else None, progress=progress is True,
    ) if specs else pd.DataFrame()
    scored_on = trained_on if not cross else index.name if index.name != trained_on else f"{index.name} at {index.where}"
    described = {
        "data_source": index.source, "model_type": config.model, "channels": channels_label(config.channels),
        "trained_mode": config.prompt_mode, "trained_on": trained_on,
        # another dataset that happens to bear the training data's name is told apart by its place
        "scored_on": scored_on, "setup": run_setup(config), "split": config.split, "part": part,
        "selection": selection_label(config.split, part, adapter),
    }
    if specs:
        for column, value in described.items():
            results[column] = value
        atomic_write_csv(results, runs.results(run_dir, part, on), index=False)
        atomic_write_csv(summarize(results), runs.summary(run_dir, part, on))
    if clicks:
        from samocta.clicks import click_summary, evaluate_clicks

        curves = evaluate_clicks(model, index, ids, config.task, max_clicks, config.seed, config.threshold, click_start,
                                 feedback, fold=fold, progress=progress is True)
        for column, value in described.items():
            curves[column] = value
        results.attrs["clicks"], results.attrs["click_summary"] = curves, click_summary(curves)
        atomic_write_csv(curves, runs.clicks(run_dir, part, on), index=False)
        atomic_write_csv(results.attrs["click_summary"], runs.click_summary(run_dir, part, on), index=False)
    atomic_write_text(runs.evaluation(run_dir, part, on),
                      json.dumps({"part": part, "ids": ids, "modes": list(specs) + [CLICKS] * clicks, "adapter": adapter,
                                  "data": str(index.where), "scored_on": scored_on,
                                  **({"max_clicks": max_clicks, "click_start": click_start,
                                      "feedback": bool(curves["feedback"].iloc[0]) if len(curves) else None} if clicks else {})})
                      + "\n")
    results.attrs["on"] = on  # the other dataset's slug in the file names (None: the run's own data)
    return results


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
