"""Evaluation: per-sample metrics for prompt modes none / global / local / auto, and a run scored on its split.

Prompts at evaluation are derived from the ground truth, as in the paper, and fixed per subject
(``samocta.prompts.evaluation_prompt``), so the same run always scores the same. Results are
"prompted (GT-derived)" segmentation; mode "none" (SAM's padding point only) is the prompt-free
baseline.

One scorer: ``evaluate`` is what training's validation calls too, so the validation Dice of an
epoch equals what ``evaluate_run(run, part="val")`` reports for that epoch's adapter in the run's
prompt mode. Each model decodes with its own mask rule (``PromptableSam.mask_rule``), through the
decode every caller shares (``samocta.decode``). A model scored in a mode it was not trained in
keeps its ``trained_mode`` beside the ``mode`` it was scored in, in every row and summary
(``samocta.evaluate.paper`` never mixes them).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

import numpy as np
import torch

from samocta.core import runs
from samocta.core.errors import InputError
from samocta.decode.modes import decode_auto, prompt_specs
from samocta.decode.views import decode_points, scan_views
from samocta.model.promptable import binarize
from samocta.prompts import MODES, Prompt, PromptSpec, label_tasks

if TYPE_CHECKING:
    import pandas as pd

    from samocta.data import Dataset, Sample
    from samocta.model import PromptableSam

CLICKS = "clicks"
"""Not a prompt mode but a protocol: simulated corrective clicks (``samocta.evaluate.clicks``), scored per click."""


@torch.inference_mode()
def predict_modes(
    model: "PromptableSam", sample: "Sample", task: str, specs: Mapping[str, PromptSpec], seed: int = 0, threshold: float = 0.5
) -> Iterator[tuple[str, Prompt, np.ndarray]]:
    """One subject's fixed evaluation prompt and predicted mask for each mode, from one embedding per view.

    A subject of another pixel size than the model's training images is resampled to it and its
    masks come back at its own size (``samocta.decode.resample``); prompts are drawn from its own label.

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
    keep: "dict | None" = None,
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
        keep: if given, the predicted masks are kept in it, ``keep[(id, mode)]`` (training measures what its
            adapter draws on its validation subjects, ``samocta.train.record``).

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
            if keep is not None:
                keep[(sid, mode)] = pred
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
    trained = f"LoRA r={config.rank}" + (" + decoder" if config.train_decoder else "") + (" + fine path" if config.fine else "")
    from samocta.model.build import TINY_CONFIG

    model = f"tiny {config.input_size or TINY_CONFIG['img_size']} px" if config.model == "tiny" else config.model
    loss = f"{config.loss_preset} loss" + (f" + {config.boundary_weight:g} boundary" if config.boundary_weight else "")
    return f"{model}, {trained}, {config.mask_rule} mask, {loss}"


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
            ``CLICKS`` ("clicks") adds simulated corrective clicks (``samocta.evaluate.clicks.evaluate_clicks``):
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
            (``samocta.decode.resample``). OCTA-500 subjects the run trained or validated on (the same number in
            another copy of OCTA-500) are left out.
        fov, fov_mm: for ``data``, as ``open_dataset`` takes them.
        max_clicks, click_start, feedback: the corrective clicks' count, start and mask feedback
            (``samocta.evaluate.clicks.click_curve``).

    Returns:
        the per-sample rows of ``evaluate`` plus the run's data_source, model_type, channels,
        trained_mode, trained_on, scored_on, setup, split, part and selection. Written to
        ``results-<part>.csv`` (another dataset: ``results-<part>-on-<slug>.csv``, the slug in
        ``attrs["on"]``) with its summary.
    """
    import pandas as pd

    from samocta.config import TrainConfig, open_data
    from samocta.core.files import atomic_write_csv, atomic_write_text
    from samocta.data import Split, channels_label, dataset_slug, fov_of, id_seed, same_dataset
    from samocta.data.source import open_for_adapter
    from samocta.metrics import summarize
    from samocta.model import build_model

    adapter_file = runs.adapter(run_dir, adapter)
    run_dir = Path(run_dir)
    config = TrainConfig.from_json(run_dir / runs.CONFIG)
    split = Split.from_json(run_dir / runs.SPLIT)
    modes = list(modes) if modes is not None else ["none", config.prompt_mode]
    clicks = CLICKS in modes
    modes = [m for m in modes if m != CLICKS]
    if clicks:  # checked before any work starts
        from samocta.decode.session import STARTS

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
        from samocta.evaluate.clicks import click_summary, evaluate_clicks

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
