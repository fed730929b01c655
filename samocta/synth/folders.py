"""Writing synthetic subjects as a folder dataset (``samocta.data.folder``): one projection or three, any
size and field of view, the layouts real OCTA comes in, so that every form is exercised without real data.

A field of view other than OCTA-500's 3 and 6 mm is cut from the centre of a subject drawn at 3 mm
(for widths up to 3 mm) or 6 mm (up to 6 mm), drawn at the pixel count that gives the asked size:
the anatomy keeps its physical scale, the FAZ stays at the centre, and the width actually written
(a whole number of pixels) is what ``dataset.json`` records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from samocta import __version__
from samocta.core.files import atomic_write_text
from samocta.core.vocabulary import TASKS
from samocta.data.imageio import FORMATS, MAX_IMAGE_SIDE, write_grey
from samocta.data.octa500 import FOV_MM, FOV_SIZE, LAYERS
from samocta.data.splits import standard_split
from samocta.synth.generator import SynthConfig, make_sample
from samocta.synth.writer import GENERATOR_VERSION, SynthError, sample_seed, synthetic_ids

# flat: images/ + labels/<TASK>/; subfolders: images/<PROJECTION>/ + labels/<TASK>/;
# split: train/, val/, test/ each with image/ + label/ (one task, as ROSSA and the public
# single-projection copy of OCTA-500) or images/ + labels/<TASK>/ (several)
FOLDER_LAYOUTS = ("flat", "subfolders", "split")
STEMS = ("id", "index", "name")  # "10301"; "0001"; "scan_0001_OD"
MIN_FOV_MM = 1.5  # the FAZ (about 0.6 mm across) and its surroundings stay inside


def _stem(kind: str, sid: int, i: int) -> str:
    if kind == "id":
        return str(sid)
    if kind == "index":
        return f"{i + 1:04d}"
    return f"scan_{i + 1:04d}_{'OD' if sid % 2 else 'OS'}"


def folder_geometry(fov_mm: float | None, size: int | None, fov: str = "3M") -> tuple[str, int, int, float]:
    """What to draw for a folder of ``fov_mm`` x ``fov_mm`` mm at ``size`` px: (OCTA-500 FoV drawn, pixels
    drawn, pixels kept, the width in mm actually kept)."""
    fov_mm = FOV_MM[fov] if fov_mm is None else float(fov_mm)
    if not MIN_FOV_MM <= fov_mm <= FOV_MM["6M"]:
        raise SynthError(f"the field of view (--fov-mm) must be {MIN_FOV_MM:g} to {FOV_MM['6M']:g} mm for synthetic data; got {fov_mm:g}")
    base = fov if abs(fov_mm - FOV_MM[fov]) < 1e-9 else "3M" if fov_mm <= FOV_MM["3M"] else "6M"
    keep = int(size or round(FOV_SIZE[base] * fov_mm / FOV_MM[base]))
    if not 32 <= keep <= MAX_IMAGE_SIDE:
        raise SynthError(f"the image size (--size) must be 32 to {MAX_IMAGE_SIDE} px; got {keep}")
    drawn = max(keep, round(keep * FOV_MM[base] / fov_mm))
    if drawn > 2 * MAX_IMAGE_SIDE:
        raise SynthError(f"{keep} px over {fov_mm:g} mm needs a {drawn} px subject; choose a smaller --size")
    return base, drawn, keep, keep * FOV_MM[base] / drawn


def write_folder(
    root: str | os.PathLike,
    n: int = 40,
    seed: int = 0,
    fov: str = "3M",
    size: int | None = None,
    fov_mm: float | None = None,
    projections: Sequence[str] = ("ILM_OPL",),
    tasks: Sequence[str] = ("RV",),
    layout: str = "flat",
    suffix: str = ".png",
    stems: str = "id",
    describe: bool = True,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> list[str]:
    """Write ``n`` synthetic subjects as a folder dataset.

    Args:
        root: the dataset folder to write.
        n, seed: as ``write_octa500`` (the same subjects: ids spread over the standard split,
            each drawn with ``sample_seed(seed, id)``).
        fov: the OCTA-500 FoV whose anatomy is drawn when ``fov_mm`` is its width.
        size, fov_mm: pixels per side and width in mm (default: the FoV's own).
        projections: one (a grey image) or three (an RGB image, or three folders) of ``LAYERS``.
        tasks: the labels written; ``layout="split"`` with one task writes ROSSA's ``label/``.
        layout: one of ``FOLDER_LAYOUTS``.
        suffix: the images' format (".png", ".bmp", ".tif", ".jpg"; labels are PNG when it is lossy).
        stems: file names, one of ``STEMS``.
        describe: write ``dataset.json`` (fov_mm, projections, tasks, the split of a flat layout,
            and the generator's record); without it the folder says nothing of its width in mm.

    Returns:
        the stems written.
    """
    from tqdm.auto import tqdm

    bad = [p for p in projections if p not in LAYERS] + [t for t in tasks if t not in TASKS]
    if bad or len(projections) not in (1, 2, 3) or not tasks:
        raise SynthError(f"projections are 1 to 3 of {LAYERS} and tasks some of {TASKS}; got {list(projections)}, {list(tasks)}")
    if layout not in FOLDER_LAYOUTS or stems not in STEMS or suffix.lower() not in FORMATS:
        raise SynthError(f"layout is one of {FOLDER_LAYOUTS}, stems one of {STEMS}, suffix one of {tuple(FORMATS)}")
    if layout != "subfolders" and len(projections) == 2:
        raise SynthError("two projections need layout='subfolders' (an image file holds one or three)")
    base, drawn, keep, width_mm = folder_geometry(fov_mm, size, fov)
    root = Path(root)
    label_suffix = ".png" if FORMATS[suffix.lower()] == "JPEG" else suffix
    ids = synthetic_ids(base, n)
    split = standard_split(base).restrict(ids)
    part_of = {sid: part for part in ("train", "val", "test") for sid in getattr(split, part)}
    written, subjects = [], {}
    for i, sid in enumerate(tqdm(ids, desc=f"synthetic folder {width_mm:.3g} mm", disable=not progress)):
        sample = make_sample(base, sample_seed(seed, sid), drawn, config)
        c0 = (drawn - keep) // 2
        image = sample.image[c0 : c0 + keep, c0 : c0 + keep]
        stem = _stem(stems, sid, i)
        folder = root / part_of[sid] if layout == "split" else root
        single = layout == "split" and len(tasks) == 1
        chosen = [LAYERS.index(p) for p in projections]
        if layout == "subfolders":
            for p, c in zip(projections, chosen):
                write_grey(folder / "images" / p / f"{stem}{suffix}", np.ascontiguousarray(image[..., c]))
        else:
            pixels = image[..., chosen[0]] if len(chosen) == 1 else image[..., chosen]
            write_grey(folder / ("image" if single else "images") / f"{stem}{suffix}", np.ascontiguousarray(pixels))
        for task in tasks:
            label = sample.labels[task][c0 : c0 + keep, c0 : c0 + keep]
            where = folder / "label" if single else folder / "labels" / task
            write_grey(where / f"{stem}{label_suffix}", label)
        written.append(stem)
        subjects[stem] = {"faz": sample.meta["faz_kind"], "faz_area_mm2": round(sample.meta["faz_area_mm2"], 4)}
    if describe:
        by_stem = dict(zip(ids, written))
        meta = {
            "name": root.name,
            "fov_mm": width_mm,
            "projections": list(projections),
            "tasks": list(tasks),
            "synthetic": {"generator": f"samocta {__version__} synth", "generator_version": GENERATOR_VERSION,
                          "seed": seed, "fov": base, "drawn_px": drawn, "layout": layout,
                          "config": (config or SynthConfig()).__dict__, "subjects": subjects},
        }
        if layout != "split":
            meta["split"] = {part: [by_stem[sid] for sid in getattr(split, part)] for part in ("train", "val", "test")}
        if layout == "subfolders":
            meta.pop("projections")  # the folders name them
        atomic_write_text(root / "dataset.json", json.dumps(meta, indent=1) + "\n")
    return written
