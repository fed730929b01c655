"""Masks for scans nobody has labelled: prompt-free, automatic prompts, or clicked points; and the
files ``python -m samocta predict`` writes.

A fine-tuned adapter describes itself (model type, LoRA settings, mask rule, task, FoV, how it was
trained), so a prediction needs only the adapter, the base checkpoint for the official models,
and the scans, in whatever form they come (an OCTA-500 tree, a folder dataset, a plain folder of
images) and at whatever size: each scan is brought to the pixel size the adapter was trained at
(``samocta.decode.resample``). Masks are written in the OCTA-500 label convention: 8-bit PNGs with 0 and
255, the size and orientation of the scan, one folder per task named as OCTA-500 names it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from samocta.core import runs
from samocta.core.errors import InputError, SamOctaError
from samocta.data.ids import SampleId
from samocta.data.octa500 import LAYERS, TASK_FOLDERS

if TYPE_CHECKING:
    import pandas as pd

    from samocta.model import LoRASam, PromptableSam

PROMPTS = ("none", "auto")
# the measurement given an interval over the quality variations, per task (the first present)
INTERVAL_MEASURES = ("faz_area_mm2", "faz_area_px", "area_density_pct")
Points = tuple[np.ndarray, np.ndarray]  # coords float32 (N, 2) (x, y), pixel centres at i + 0.5; labels int (N,)


class PredictError(SamOctaError, ValueError):
    """A prediction cannot be made as asked (inputs, prompts or outputs)."""


def load_model(adapter: str | os.PathLike, checkpoint: str | None = None, device: str = "auto") -> "LoRASam":
    """The model an adapter (a file, or a run or fold folder: its best adapter) was trained with, loaded.

    The base checkpoint is ``checkpoint``, else, for a run folder, the one its config names, else the
    shipped tiny SAM; an adapter trained on other weights is refused (their SHA-256 differ).
    """
    from samocta.config import TrainConfig
    from samocta.model import LoRASam, resolve_device

    path = Path(adapter)
    if path.is_dir():
        folds = runs.fold_dirs(path)
        if not folds:
            raise PredictError(f"{path}: no trained fold in this folder (expected config.json in it or in a folder below)")
        path = runs.adapter(folds[0], "best")
        if checkpoint is None:
            checkpoint = TrainConfig.from_json(folds[0] / runs.CONFIG).checkpoint
    model = LoRASam.from_adapter(path, checkpoint)
    return model.to(resolve_device(device)).eval()


def predict(
    model: "PromptableSam",
    images: np.ndarray | Sequence[np.ndarray],
    prompts: str | Sequence[Points] = "none",
    threshold: float = 0.5,
    seed: int = 0,
    pixel_um: float | Sequence[float | None] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Masks for images without labels, each at its own size; one embedding per view, reused by both passes of "auto".

    A scan of another pixel size than the adapter's training images is brought to the training
    pixel size and its mask comes back at the scan's own size (``samocta.decode.resample``).

    Args:
        model: a ``PromptableSam``/``LoRASam`` (decodes with its own mask rule).
        images: uint8 ``(B, H, W, 3)`` (or one ``(H, W, 3)``, or a list of images of different
            sizes), SAM's three channels as the adapter was trained with them.
        prompts: "none" (SAM's padding point only), "auto" (points from the model's own confident
            regions, see ``samocta.evaluate.auto_prompt``), or one ``(coords, labels)`` per image
            (e.g. clicked points; ``(x, y)`` in the image's own pixels, centres at ``i + 0.5``), decoded
            in their order as the click canvas decodes them (``samocta.decode.session.ClickSession``).
        threshold: on probabilities.
        seed: of the automatic prompts' draws (image i uses ``(seed, i)``).
        pixel_um: the images' pixel size in µm (one for all, or one per image; None: unknown,
            which is refused for an image whose size differs from the adapter's training images).

    Returns:
        bool ``(B, H, W)`` (or ``(H, W)`` for one image; a list for images of different sizes).
    """
    import torch

    from samocta.decode.modes import decode_prompt
    from samocta.decode.views import scan_views
    from samocta.model.promptable import binarize

    single = isinstance(images, np.ndarray) and images.ndim == 3
    batch = [np.asarray(images)] if single else [np.asarray(i) for i in images]
    if isinstance(prompts, str):
        if prompts not in PROMPTS:
            raise InputError(f"prompts must be one of {PROMPTS} or a list of (coords, labels), got {prompts!r}")
    elif len(prompts) != len(batch):
        raise InputError(f"need one prompt per image: {len(batch)} images, {len(prompts)} prompts")
    sizes = pixel_um if isinstance(pixel_um, (list, tuple)) else [pixel_um] * len(batch)
    masks = []
    with torch.inference_mode():
        model.eval()
        for i, image in enumerate(batch):
            if image.ndim != 3 or image.shape[-1] != 3:
                raise InputError(f"images must be (H, W, 3) uint8, got {image.shape} for image {i}")
            resampling, embeddings = scan_views(model, image, sizes[i], f"image {i}")
            how = prompts if isinstance(prompts, str) else prompts[i]
            logits = decode_prompt(model, resampling, embeddings, how, np.random.default_rng([seed, i]))
            masks.append(binarize(logits, threshold)[0])
    if single:
        return masks[0]
    return np.stack(masks) if len({m.shape for m in masks}) <= 1 else masks


def read_clicks(path: str | os.PathLike, ids: Sequence, size: tuple[int, int] | Mapping) -> dict:
    """Clicked points per subject from JSON: ``{"<id>": {"points": [[x, y], ...], "labels": [1, 0, ...]}}``
    (each value as the click widget saves it), or one such object when there is one subject.

    Args:
        ids: the subjects' ids; size: the ``(H, W)`` the points lie on, one for all or a mapping by id.

    Raises:
        PredictError: unreadable JSON, ids that are not among the scans (named), more than
            ``samocta.prompts.MAX_POINTS`` points for a subject, or points that are not on the image or
            labels other than 0 and 1.
    """
    from samocta.core.files import read_json
    from samocta.data.ids import parse_id
    from samocta.decode.session import PromptState
    from samocta.prompts import MAX_POINTS

    path = Path(path)
    raw = read_json(path, "prompts file", 'give --prompts none, auto, or a JSON file {"<id>": {"points": [[x, y], ...], '
                    '"labels": [1, 0, ...]}} (the click widget saves one)', max_bytes=16 << 20)
    if isinstance(raw, dict) and "points" in raw:
        if len(ids) != 1:
            raise PredictError(f"{path} holds one subject's points; with {len(ids)} subjects key them by id: "
                               '{"<id>": {"points": [...], "labels": [...]}}')
        raw = {str(ids[0]): raw}
    if not isinstance(raw, dict):
        raise PredictError(f"{path}: expected an object keyed by subject id")
    keyed = {key: parse_id(key, ids) for key in raw}
    unknown = sorted(k for k, sid in keyed.items() if sid is None)
    if unknown:
        raise PredictError(f"{path} names subjects that are not among the scans: {unknown[:10]}")
    clicks = {}
    for key, value in raw.items():
        sid = keyed[key]
        shape = size[sid] if isinstance(size, Mapping) else size
        points = value.get("points") if isinstance(value, dict) else None
        labels = value.get("labels") if isinstance(value, dict) else None
        if not isinstance(points, list) or not isinstance(labels, list):
            raise PredictError(f'{path}: subject {key}: expected {{"points": [[x, y], ...], "labels": [1, 0, ...]}}')
        if len(points) != len(labels):
            raise PredictError(f"{path}: subject {key} has {len(points)} points and {len(labels)} labels; give one label "
                               "(1 positive, 0 negative) per point")
        if len(points) > MAX_POINTS:
            raise PredictError(f"{path}: subject {key} has {len(points):,} points; a prompt takes at most {MAX_POINTS}")
        if not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise PredictError(f"{path}: subject {key}: each point is [x, y] in pixels")
        try:
            state = PromptState.from_defaults([(x, y, lab) for (x, y), lab in zip(points, labels)], size=shape)
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictError(f"{path}: subject {key}: {exc}") from None
        clicks[sid] = state.as_arrays()
    return clicks


@dataclass
class Scan:
    """One scan to segment: its id (OCTA-500 number or file stem), SAM's channels, its width in mm (None: unknown)."""

    id: SampleId
    image: np.ndarray
    fov_mm: float | None

    @property
    def pixel_um(self) -> float | None:
        return None if self.fov_mm is None else self.fov_mm * 1000.0 / self.image.shape[1]


def read_scans(
    source: str | os.PathLike,
    fov: str | None = None,
    ids: Sequence[str] | None = None,
    fov_mm: float | None = None,
    channels: str = ",".join(LAYERS),
) -> list[Scan]:
    """The scans of ``source``, their channels filled as an adapter trained with ``channels`` needs:
    an OCTA-500 root (either layout), a folder dataset or a plain folder of images (labels not
    needed: ``samocta.data.open_dataset``), or a folder of ``<id>_OPL_BM``, ``<id>_ILM_OPL`` and
    ``<id>_FULL`` images.

    Args:
        ids: the subjects to read, as text (default all).
        fov, fov_mm: as ``open_dataset`` takes them (fov_mm: the scans' width, for a folder).

    Raises:
        PredictError / DatasetError: a missing or unreadable projection, named with its path, or a
            projection the adapter needs that the scans lack.
    """
    from samocta.core.vocabulary import parse_channels
    from samocta.data import DatasetError, read_grey
    from samocta.data.ids import parse_id, sorted_ids
    from samocta.data.octa500 import FOV_MM
    from samocta.data.source import open_for_adapter

    source = Path(source)
    names = parse_channels(channels)
    flat = sorted(source.glob("*_FULL.*")) if source.is_dir() else []
    if flat:
        found = {p.name.split("_FULL")[0]: p.suffix for p in flat}
        wanted = list(ids) if ids else sorted_ids(found)
        if fov_mm is None and fov in FOV_MM:
            fov_mm = FOV_MM[fov]
        scans = []
        for stem in wanted:
            if stem not in found:
                raise PredictError(f"{source}: no {stem}_FULL image")
            layers = {layer: read_grey(source / f"{stem}_{layer}{found[stem]}") for layer in dict.fromkeys(names)}
            # an OCTA-500 number is an int; "01" stays the stem it is, so that it never meets "1" in one id
            sid = int(stem) if stem.isascii() and stem.isdigit() and str(int(stem)) == stem else stem
            scans.append(Scan(sid, np.stack([layers[n] for n in names], axis=-1), fov_mm))
        return scans
    try:
        index = open_for_adapter(source, channels, fov, fov_mm)
    except DatasetError as exc:
        raise PredictError(f"{exc}; or give a folder of <id>_OPL_BM, <id>_ILM_OPL and <id>_FULL images") from None
    chosen = list(index.ids)
    if ids:
        chosen = [parse_id(str(i), index.ids) for i in ids]
        missing = [i for i, sid in zip(ids, chosen) if sid is None]
        if missing:
            raise PredictError(f"ids not found under {index.where}: {missing[:10]}")
    return [Scan(sid, index.load(sid, tasks=(), check_orientation=False).image, index.fov_mm) for sid in chosen]


def write_outputs(out: Path, sid: SampleId, task: str, image: np.ndarray, mask: np.ndarray, channels: Sequence[str] = LAYERS) -> None:
    """The mask (``<out>/<GT folder>/<id>.png``, 0/255, at the scan's size) and an overlay on FULL (or the
    middle channel; ``<out>/overlays/<id>.png``)."""
    from PIL import Image

    from samocta.core.files import atomic_write
    from samocta.data import write_grey

    write_grey(out / TASK_FOLDERS[task] / f"{sid}.png", mask)
    shown = list(channels).index("FULL") if "FULL" in channels else 1
    rgb = np.repeat(image[..., shown, None].astype(np.float32), 3, axis=-1)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([30.0, 144.0, 255.0])  # the book's mask blue
    overlay = Image.fromarray(rgb.astype(np.uint8), "RGB")
    atomic_write(out / "overlays" / f"{sid}.png", lambda fh: overlay.save(fh, "PNG"), sync=False)


def adapter_channels(model: "LoRASam") -> str:
    """The channels an adapter was trained with (adapters from before the option: the paper's three)."""
    return getattr(model, "trained_with", {}).get("channels") or ",".join(LAYERS)


def predict_scans(
    model: "LoRASam",
    source: str | os.PathLike,
    out: str | os.PathLike,
    prompts: str = "none",
    ids: Sequence[str] | None = None,
    fov: str | None = None,
    threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
    fov_mm: float | None = None,
    review_rate: float = 0.1,
    seed: int = 0,
    eye: str = "auto",
    faz_model: "LoRASam | None" = None,
    report: bool = False,
) -> "pd.DataFrame":
    """What ``python -m samocta predict`` does: every scan of ``source`` segmented, its mask and overlay
    written under ``out`` (``write_outputs``), and ``out/measurements.csv`` (``samocta.measure``).

    Scans of any size: each is brought to the pixel size the adapter was trained at and its mask
    written at the scan's own size, its measurements in the scan's own pixel size. A scan whose
    width in mm is unknown is segmented at the adapter's scale only if it has the adapter's size,
    and measured in pixels (the table says so; the mm columns are left out).

    Args:
        model: from ``load_model`` (its task, channels and training images come from the adapter).
        source: see ``read_scans``.
        prompts: "none", "auto", or a JSON file of clicked points (``read_clicks``); subjects
            without clicks in it are segmented without prompts, and the table says so.
        ids: the subjects (default all); fov: the part of an OCTA-500 tree (default: the adapter's
            when the tree has it); fov_mm: a folder's scan width in mm.
        overwrite: replace existing outputs (otherwise refused).
        review_rate: the share of the scans flagged ``review`` (lowest quality first; ``samocta.predict.quality``).
        seed: of the automatic prompts' draws.
        eye: "OD", "OS" (every scan), or "auto": the OD / OS a scan's file name holds, else unknown
            (the ETDRS sectors then named by image side).
        faz_model: a FAZ adapter (``load_model``): each scan's FAZ, segmented prompt-free, centres the
            ETDRS grid and gives the FD-300 of a vessel task (without it: the image centre, no FD-300).
        report: also write ``report/<id>.png`` (the overlay with the grid and the numbers) and
            ``report.html`` listing them, the scans flagged for review first (``samocta.predict.report``).

    Returns:
        the measurements table, one row per subject, its columns as ``samocta.measure.COLUMNS`` says:
        whole-image measurements, the regional ones (where the width in mm is known), an interval of
        the headline one over the quality variations, ``predicted_iou``, ``agreement``,
        ``confidence``, ``quality`` and ``review``.
    """
    from samocta.core.files import folder_lock
    from samocta.data.octa500 import octa500_fovs
    from samocta.decode.resample import frame_of, plan_resampling

    task, trained_fov = model.task, model.trained_with.get("fov")
    if task is None:
        raise PredictError("the adapter names no task; train it with samocta train")
    if fov is None and trained_fov in octa500_fovs(source):
        fov = trained_fov
    out = Path(out)
    channels = adapter_channels(model)
    if not 0 <= review_rate <= 1:
        raise PredictError(f"--review-rate is the share of the scans flagged for review, 0 to 1; got {review_rate}")
    if eye not in ("auto", "OD", "OS"):
        raise PredictError(f"--eye is OD (right), OS (left) or auto (from each file name); got {eye!r}")
    if faz_model is not None:
        if faz_model.task != "FAZ":
            raise PredictError(f"--faz-adapter must be a FAZ adapter; this one segments {faz_model.task}")
        if adapter_channels(faz_model) != channels:
            raise PredictError(f"--faz-adapter was trained with channels {adapter_channels(faz_model)}, the adapter with "
                               f"{channels}; give a FAZ adapter trained on the same projections")
    if ids is not None:
        twice = sorted({str(i) for i in ids if list(map(str, ids)).count(str(i)) > 1})
        if twice:
            raise PredictError(f"--ids names {', '.join(twice[:5])} more than once; every scan is one row: name each once")
    scans = read_scans(source, fov, ids, fov_mm, channels)
    if eye != "auto":  # a scan's own name saying the other eye: the grid's nasal and temporal sectors would swap
        from samocta.measure.regional import eye_of

        other = [str(scan.id) for scan in scans if eye_of(str(scan.id)) not in (None, eye)]
        if other:
            raise PredictError(f"--eye {eye}, but the names of {len(other)} scan(s) say the other eye ({', '.join(other[:5])}); "
                               "give --eye auto to take each scan's own, or leave those out with --ids")
    outputs = _outputs(out, task, [scan.id for scan in scans], report)
    frame = frame_of(model.trained_with)
    plans = {scan.id: plan_resampling(scan.image.shape[:2], scan.pixel_um, frame, f"subject {scan.id}") for scan in scans}
    clicks = read_clicks(prompts, [s.id for s in scans], {s.id: s.image.shape[:2] for s in scans}) if prompts not in PROMPTS else {}
    # one writer per output folder, as a training has: a second prediction into it is refused while
    # this one runs, instead of both writing and one's measurements.csv replacing the other's
    with folder_lock(out, "a prediction"):
        stale = _stale_outputs(out, outputs, overwrite)
        if overwrite and not report:  # an earlier report page would list this table's scans wrongly
            from samocta.predict.report import PAGE

            stale += [out / PAGE] if (out / PAGE).is_file() else []
        table = _predict_into(model, scans, plans, clicks, out, prompts, threshold, overwrite, progress, review_rate, seed,
                              channels, eye, faz_model)
        for path in stale:  # the earlier prediction's files this one does not replace: its table is gone
            path.unlink(missing_ok=True)
        for folder in {path.parent for path in stale} - {out}:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if report:
            from samocta.core.vocabulary import parse_channels
            from samocta.predict.report import write_report

            write_report(out, table, {scan.id: scan.image for scan in scans}, parse_channels(channels))
        return table


def read_measurements(path: str | os.PathLike) -> "pd.DataFrame":
    """``measurements.csv`` as ``predict_scans`` returned it: a scan with no review reason reads back as ``""``
    (pandas reads the empty cell as NaN, converters or not); ids are read as pandas reads them (OCTA-500's
    numbers as numbers, as its index names them)."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"review_reason": str})
    if "review_reason" in table.columns:
        table["review_reason"] = table["review_reason"].fillna("")
    return table


def check_scans(model: "LoRASam", index, threshold: float = 0.5, progress: bool = False) -> list[str]:
    """What ``check-data --adapter`` adds to a dataset's checks: each scan segmented prompt-free as ``predict``
    segments it, and held against the adapter's training labels (``samocta.predict.review``).

    Args:
        model: from ``load_model``; index: the dataset, opened with the adapter's channels.

    Returns:
        one line per scan with a reason to look (a declared width its vessels contradict, no signal, no
        structure, a mask unlike the training labels), naming the scan's file.
    """
    from tqdm.auto import tqdm

    from samocta.measure import measure, measure_pixels
    from samocta.model.lora import parse_stats
    from samocta.predict.review import review_reasons

    stats = parse_stats(model.trained_with.get("label_stats"), "label_stats")
    own = parse_stats(model.trained_with.get("mask_stats"), "mask_stats")
    problems = []
    for sid in tqdm(index.ids, desc=f"segmenting {model.task}", disable=not progress, leave=False):
        sample = index.load(sid, tasks=(), check_orientation=False)
        mask = predict(model, sample.image, "none", threshold, pixel_um=sample.pixel_um)
        measures = measure(mask, model.task, sample.fov_mm) if sample.fov_mm is not None else measure_pixels(mask, model.task)
        reasons, warning = review_reasons(sample.image, mask, model.task, measures, stats, sample.fov_mm, own)
        if reasons:
            where = index.path(sid, index.used[0])
            problems.append(f"{where}: segmented with the adapter, {warning or '; '.join(reasons)}")
    return problems


OUTPUT_FOLDERS = ("overlays", "report")  # with the task's label folders: what a prediction writes per scan


def _outputs(out: Path, task: str, ids: Sequence[SampleId], report: bool) -> set[Path]:
    """The per-scan files a prediction of ``ids`` writes into ``out``."""
    from samocta.predict.report import REPORT_DIR

    folders = [TASK_FOLDERS[task], "overlays", *([REPORT_DIR] if report else [])]
    return {out / folder / f"{sid}.png" for sid in ids for folder in folders}


def _stale_outputs(out: Path, outputs: set[Path], overwrite: bool) -> list[Path]:
    """The files of an earlier prediction in ``out`` that this one leaves behind, to remove once its table is written.

    Every file in a prediction's folders must belong to its table: the earlier table's files that this
    prediction does not rewrite are stale (removed with ``overwrite``); a file no table here lists (a
    user's own labels, say) is never removed, and the prediction is refused instead.

    Raises:
        PredictError: files in the prediction's folders that no table in ``out`` lists.
    """
    import io

    import pandas as pd

    from samocta.core.files import UnreadableFileError, plain_text, read_bytes

    folders = [*TASK_FOLDERS.values(), *OUTPUT_FOLDERS]
    present = {path for folder in folders if (out / folder).is_dir() for path in (out / folder).iterdir()}
    listed: set[Path] = set()
    table = out / "measurements.csv"
    if table.exists():
        try:
            earlier = pd.read_csv(io.BytesIO(read_bytes(table, "measurements table", "", 64 << 20)), dtype=str,
                                  keep_default_na=False)
            names = {f"{plain_text(sid)}.png" for sid in earlier.get("id", [])}
        except (UnreadableFileError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            names = set()
        listed = {path for path in present if path.name in names}
    strangers = sorted(present - listed - outputs)
    if strangers:
        raise PredictError(f"{out} holds {len(strangers)} file(s) in a prediction's folders that no prediction's table "
                           f"there lists ({', '.join(str(p) for p in strangers[:3])}); every file in an output folder "
                           "belongs to its table: choose another --out, or move them")
    return sorted(listed - outputs) if overwrite else []


def _segment(model: "LoRASam", scan: "Scan", threshold: float) -> np.ndarray:
    """One scan's prompt-free mask from ``model`` (a second adapter's: the FAZ that centres the grid)."""
    from samocta.decode.modes import decode_prompt
    from samocta.decode.views import scan_views
    from samocta.model.promptable import binarize

    resampling, embeddings = scan_views(model, scan.image, scan.pixel_um, f"subject {scan.id}")
    return binarize(decode_prompt(model, resampling, embeddings, "none", np.random.default_rng(0)), threshold)[0]


def _predict_into(model: "LoRASam", scans: list, plans: dict, clicks: dict, out: Path, prompts: str, threshold: float,
                  overwrite: bool, progress: bool, review_rate: float, seed: int, channels: str, eye: str = "auto",
                  faz_model: "LoRASam | None" = None) -> "pd.DataFrame":
    """``predict_scans`` past its checks, with the output folder held."""
    import pandas as pd
    from tqdm.auto import tqdm

    from samocta.core.files import atomic_write_csv
    from samocta.core.vocabulary import parse_channels
    from samocta.data.channels import channels_label
    from samocta.measure import FOV_MM_HINT, measure, measure_pixels
    from samocta.measure.regional import eye_of, regional_measures
    from samocta.model.lora import parse_stats
    from samocta.predict.quality import interval, review_flags, scan_quality
    from samocta.predict.review import review_reasons

    task = model.task
    label_stats = parse_stats(model.trained_with.get("label_stats"), "label_stats")
    own_stats = parse_stats(model.trained_with.get("mask_stats"), "mask_stats")
    outputs = [out / "measurements.csv", *(out / TASK_FOLDERS[task] / f"{scan.id}.png" for scan in scans)]
    clash = [path for path in outputs if path.exists()]
    if clash and not overwrite:
        raise PredictError(f"{clash[0]} exists (and {len(clash) - 1} more outputs); pass --overwrite to replace them, "
                           "or choose another --out")
    if any(scan.fov_mm is None for scan in scans):
        print(f"note: {FOV_MM_HINT}; the scans are measured in pixels", file=sys.stderr)
    names = parse_channels(channels)
    rows = []
    for i, scan in enumerate(tqdm(scans, desc=f"predict {task} ({prompts})", disable=not progress)):
        if prompts in PROMPTS:
            how, used = prompts, prompts
        elif scan.id in clicks:
            how, used = clicks[scan.id], f"clicked ({len(clicks[scan.id][1])} points)"
        else:
            how, used = "none", "none (no clicks for this subject)"
        # the mask predict gives, and the variations its quality is read from (samocta.predict.quality)
        checked = scan_quality(model, scan.image, how, scan.pixel_um, threshold, (seed, 0))
        mask = checked.mask
        write_outputs(out, scan.id, task, scan.image, mask, names)

        def measured(m: np.ndarray, scan=scan) -> dict:
            return measure(m, task, scan.fov_mm) if scan.fov_mm is not None else measure_pixels(m, task)

        measures = measured(mask)
        key = next(k for k in INTERVAL_MEASURES if k in measures)
        low, high = interval(measured, checked, key)
        regional = {}
        if scan.pixel_um is not None:  # the ETDRS grid is in mm
            faz = _segment(faz_model, scan, threshold) if faz_model is not None and task != "FAZ" else None
            regional = regional_measures(mask, task, scan.pixel_um, faz, eye_of(str(scan.id)) if eye == "auto" else eye)
        reasons, warning = review_reasons(scan.image, mask, task, measures, label_stats, scan.fov_mm, own_stats)
        if warning:
            print(f"warning: scan {scan.id}: {warning}", file=sys.stderr)
        rows.append({"id": scan.id, "task": task, "size": f"{scan.image.shape[0]}x{scan.image.shape[1]}",
                     "pixel_um": scan.pixel_um, "channels": channels_label(names), "shown": plans[scan.id].describe(),
                     "prompts": used, **measures, **regional, f"{key}_low": low, f"{key}_high": high,
                     "predicted_iou": checked.predicted_iou, "agreement": checked.agreement,
                     "confidence": checked.confidence, "quality": checked.quality, "review_reason": "; ".join(reasons)})
    table = pd.DataFrame(rows)
    # a scan with a reason is flagged whatever its quality; the rest of the share goes to the lowest quality
    table["review"] = review_flags(table["quality"], review_rate, forced=table["review_reason"] != "")
    atomic_write_csv(table, out / "measurements.csv", index=False)
    return table
