"""Masks for scans nobody has labelled: prompt-free, automatic prompts, or clicked points; and the
files ``python -m samocta predict`` writes.

A fine-tuned adapter describes itself (model type, LoRA settings, mask rule, task, FoV, how it was
trained), so a prediction needs only the adapter, the base checkpoint for the official models,
and the scans. Masks are written in the OCTA-500 label convention: 8-bit PNGs with 0 and 255, the
size and orientation of the projections, one folder per task named as OCTA-500 names it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from samocta import runs
from samocta.data.octa500 import FOV_SIZE, LAYERS, TASK_FOLDERS
from samocta.errors import InputError, SamOctaError

if TYPE_CHECKING:
    import pandas as pd

    from samocta.model import LoRASam, PromptableSam

PROMPTS = ("none", "auto")
Points = tuple[np.ndarray, np.ndarray]  # coords float32 (N, 2) (x, y), pixel centres at i + 0.5; labels int (N,)


class PredictError(SamOctaError, ValueError):
    """A prediction cannot be made as asked (inputs, prompts or outputs)."""


def load_model(adapter: str | os.PathLike, checkpoint: str | None = None, device: str = "auto") -> "LoRASam":
    """The model an adapter (a file, or a run or fold folder: its best adapter) was trained with, loaded.

    The base checkpoint is ``checkpoint``, else, for a run folder, the one its config names, else the
    shipped tiny SAM; an adapter trained on other weights is refused (their SHA-256 differ).
    """
    from samocta.model import LoRASam, resolve_device
    from samocta.train import TrainConfig

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
    images: np.ndarray,
    prompts: str | Sequence[Points] = "none",
    threshold: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """Masks for images without labels; one image embedding per image, reused by both passes of "auto".

    Args:
        model: a ``PromptableSam``/``LoRASam`` (decodes with its own mask rule).
        images: uint8 ``(B, H, W, 3)`` (or one ``(H, W, 3)``), channels in ``LAYERS`` order.
        prompts: "none" (SAM's padding point only), "auto" (points from the model's own confident
            regions, see ``samocta.evaluate.auto_prompt``), or one ``(coords, labels)`` per image
            (e.g. clicked points).
        threshold: on probabilities.
        seed: of the automatic prompts' draws (image i uses ``(seed, i)``).

    Returns:
        bool ``(B, H, W)`` (or ``(H, W)`` for one image).
    """
    import torch

    from samocta.evaluate import auto_prompt, prompt_specs

    images = np.asarray(images)
    single = images.ndim == 3
    batch = images[None] if single else images
    if isinstance(prompts, str):
        if prompts not in PROMPTS:
            raise InputError(f"prompts must be one of {PROMPTS} or a list of (coords, labels), got {prompts!r}")
    elif len(prompts) != len(batch):
        raise InputError(f"need one prompt per image: {len(batch)} images, {len(prompts)} prompts")
    masks = []
    with torch.inference_mode():
        model.eval()
        for i, image in enumerate(batch):
            embedding = model.embed(image[None])
            if prompts == "auto":  # the recipe evaluate scores "auto" with
                spec = prompt_specs(getattr(model, "task", None), ["auto"])["auto"]
                mask = auto_prompt(model, embedding, spec, np.random.default_rng([seed, i]), threshold)[2]
            elif prompts == "none":
                mask = model.decode_unprompted(embedding).masks(threshold)[0]
            else:
                coords, labels = prompts[i]
                mask = model.decode(embedding, [coords], [labels]).masks(threshold)[0]
            masks.append(mask)
    out = np.stack(masks)
    return out[0] if single else out


def read_clicks(path: str | os.PathLike, ids: Sequence[int], size: tuple[int, int]) -> dict[int, Points]:
    """Clicked points per subject from JSON: ``{"<id>": {"points": [[x, y], ...], "labels": [1, 0, ...]}}``
    (each value as the click widget saves it), or one such object when there is one subject.

    Raises:
        PredictError: unreadable JSON, ids that are not among the scans (named), or points that are
            not on the image or labels other than 0 and 1.
    """
    from samocta.widgets import PromptState

    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PredictError(f"{path}: unreadable prompts JSON ({exc})") from None
    if isinstance(raw, dict) and "points" in raw:
        if len(ids) != 1:
            raise PredictError(f"{path} holds one subject's points; with {len(ids)} subjects key them by id: "
                               '{"<id>": {"points": [...], "labels": [...]}}')
        raw = {str(ids[0]): raw}
    if not isinstance(raw, dict):
        raise PredictError(f"{path}: expected an object keyed by subject id")
    unknown = sorted(k for k in raw if not k.isdigit() or int(k) not in ids)
    if unknown:
        raise PredictError(f"{path} names subjects that are not among the scans: {unknown[:10]}")
    clicks = {}
    for key, value in raw.items():
        try:
            state = PromptState.from_defaults([(x, y, lab) for (x, y), lab in zip(value["points"], value["labels"], strict=True)],
                                              size=size)
        except (KeyError, TypeError, ValueError) as exc:
            raise PredictError(f"{path}: subject {key}: {exc}") from None
        clicks[int(key)] = state.as_arrays()
    return clicks


def read_scans(source: str | os.PathLike, fov: str, ids: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(id, image)`` of each subject: from an OCTA-500 root (either layout; labels not needed), or
    from a folder of ``<id>_OPL_BM``, ``<id>_ILM_OPL`` and ``<id>_FULL`` images (.png or .bmp).

    Raises:
        PredictError / DatasetError: a missing or unreadable projection, named with its path.
    """
    from samocta.data import OCTA500, DatasetError, read_grey

    source = Path(source)
    flat = sorted(source.glob("*_FULL.*")) if source.is_dir() else []
    if flat:
        found = {int(p.name.split("_FULL")[0]): p.suffix for p in flat if p.name.split("_FULL")[0].isdigit()}
        wanted = list(ids) if ids else sorted(found)
        for sid in wanted:
            if sid not in found:
                raise PredictError(f"{source}: no {sid}_FULL image")
            layers = [source / f"{sid}_{layer}{found[sid]}" for layer in LAYERS]
            yield sid, np.stack([read_grey(p) for p in layers], axis=-1)
        return
    try:
        index = OCTA500(source, fov)
    except DatasetError as exc:
        raise PredictError(f"{exc}; or give a folder of <id>_OPL_BM, <id>_ILM_OPL and <id>_FULL images") from None
    missing = [i for i in (ids or []) if i not in index.ids]
    if missing:
        raise PredictError(f"ids not found under {index.fov_dir}: {missing[:10]}")
    for sid in ids or index.ids:
        yield sid, index.load(sid, tasks=(), check_orientation=False).image


def write_outputs(out: Path, sid: int, task: str, image: np.ndarray, mask: np.ndarray) -> None:
    """The mask (``<out>/<GT folder>/<id>.png``, 0/255) and an overlay on FULL (``<out>/overlays/<id>.png``)."""
    from PIL import Image

    from samocta.data import write_grey
    from samocta.files import atomic_write

    write_grey(out / TASK_FOLDERS[task] / f"{sid}.png", mask)
    rgb = np.repeat(image[..., LAYERS.index("FULL"), None].astype(np.float32), 3, axis=-1)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([30.0, 144.0, 255.0])  # the book's mask blue
    overlay = Image.fromarray(rgb.astype(np.uint8), "RGB")
    atomic_write(out / "overlays" / f"{sid}.png", lambda fh: overlay.save(fh, "PNG"), sync=False)


def trained_size(model: "LoRASam", fov: str) -> tuple[int, int]:
    """The ``(H, W)`` an adapter was trained on (recorded with it), else the FoV's OCTA-500 size."""
    recorded = getattr(model, "trained_with", {}).get("image_size")
    if recorded:
        h, w = recorded.split("x")
        return int(h), int(w)
    return FOV_SIZE[fov], FOV_SIZE[fov]


def check_size(image: np.ndarray, expected: tuple[int, int], where: str) -> None:
    """Refuse an image of another size than the adapter was trained on (documented choice: a resize
    would change the vessels' width in pixels, which the adapter learnt, and the measurements'
    pixel size); both sizes are named."""
    if image.shape[:2] != tuple(expected):
        raise PredictError(f"{where}: the image is {image.shape[1]} x {image.shape[0]} px; the adapter was trained on "
                           f"{expected[1]} x {expected[0]} px images (resize the projections, or use an adapter of their size)")


def predict_scans(
    model: "LoRASam",
    source: str | os.PathLike,
    out: str | os.PathLike,
    prompts: str = "none",
    ids: Sequence[int] | None = None,
    fov: str | None = None,
    threshold: float = 0.5,
    overwrite: bool = False,
    progress: bool = True,
) -> "pd.DataFrame":
    """What ``python -m samocta predict`` does: every scan of ``source`` segmented, its mask and overlay
    written under ``out`` (``write_outputs``), and ``out/measurements.csv`` (``samocta.measure``).

    Args:
        model: from ``load_model`` (its task and FoV come from the adapter).
        source: see ``read_scans``.
        prompts: "none", "auto", or a JSON file of clicked points (``read_clicks``); subjects
            without clicks in it are segmented without prompts, and the table says so.
        ids: the subjects (default all); fov: must match the adapter's (default: the adapter's).
        overwrite: replace existing outputs (otherwise refused).

    Returns:
        the measurements table, one row per subject.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from samocta.files import atomic_write_csv
    from samocta.measure import measure

    task, trained_fov = model.task, model.trained_with.get("fov")
    if task is None:
        raise PredictError("the adapter names no task; train it with samocta train")
    if trained_fov and fov and fov != trained_fov:
        raise PredictError(f"the adapter was trained on {trained_fov} scans; --fov {fov} does not match it")
    fov = trained_fov or fov
    if fov is None:
        raise PredictError("the adapter does not record its field of view; pass --fov 3M or --fov 6M")
    out = Path(out)
    scans = list(read_scans(source, fov, ids))
    outputs = [out / "measurements.csv", *(out / TASK_FOLDERS[task] / f"{sid}.png" for sid, _ in scans)]
    clash = [path for path in outputs if path.exists()]
    if clash and not overwrite:
        raise PredictError(f"{clash[0]} exists (and {len(clash) - 1} more outputs); pass --overwrite to replace them, "
                           "or choose another --out")
    size = trained_size(model, fov)
    clicks = read_clicks(prompts, [sid for sid, _ in scans], size) if prompts not in PROMPTS else {}
    rows = []
    for sid, image in tqdm(scans, desc=f"predict {task} ({prompts})", disable=not progress):
        check_size(image, size, f"subject {sid}")
        if prompts in PROMPTS:
            mask, used = predict(model, image, prompts, threshold), prompts
        elif sid in clicks:
            mask, used = predict(model, image, [clicks[sid]], threshold), f"clicked ({len(clicks[sid][1])} points)"
        else:
            mask, used = predict(model, image, "none", threshold), "none (no clicks for this subject)"
        write_outputs(out, sid, task, image, mask)
        rows.append({"id": sid, "task": task, "fov": fov, "prompts": used, **measure(mask, task, fov)})
    table = pd.DataFrame(rows)
    atomic_write_csv(table, out / "measurements.csv", index=False)
    return table
