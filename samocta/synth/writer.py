"""Writing synthetic subjects to disk in either OCTA-500 layout, so the real loader reads them unchanged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from samocta import __version__
from samocta.core.errors import SamOctaError
from samocta.core.files import atomic_write_text
from samocta.core.vocabulary import FOVS
from samocta.data.imageio import MAX_IMAGE_SIDE, write_grey
from samocta.data.octa500 import LAYERS, LAYOUT_DIRS, TASK_FOLDERS
from samocta.data.splits import standard_split
from samocta.synth.generator import SynthConfig, make_sample

# Bumped whenever the same arguments would give other images or labels, so that a tree written by
# an older generator is written again rather than reused (2: macular anatomy, issue 21).
GENERATOR_VERSION = 2


class SynthError(SamOctaError, ValueError):
    """Synthetic data was asked for with impossible arguments."""


def synthetic_ids(fov: str, n: int) -> list[int]:
    """``n`` subject ids spread over the standard split in its proportions (3M 140/10/50, 6M 180/20/100).

    Each part gets at least one id once ``n >= 3``, so ``standard_split`` yields a usable
    train/val/test split on any synthetic tree.
    """
    split = standard_split(fov)
    parts = [split.train, split.val, split.test]
    total = sum(len(p) for p in parts)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise SynthError(f"the number of subjects (--n) must be 1 to {total} for {fov} (its id range); got {n!r}")
    if n < 3:
        return split.train[:n]
    counts = [max(1, round(n * len(p) / total)) for p in parts]
    counts[0] = n - counts[1] - counts[2]
    return sorted(i for part, k in zip(parts, counts) for i in part[:k])


def sample_seed(seed: int, sample_id: int) -> int:
    """The generator seed of one subject of a tree written with ``seed``."""
    return int(np.random.SeedSequence([seed, sample_id]).generate_state(1)[0])


def write_octa500(
    root: str | os.PathLike,
    fov: str = "3M",
    n: int = 40,
    seed: int = 0,
    layout: str = "official",
    size: int | None = None,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> list[int]:
    """Write ``n`` synthetic subjects as an OCTA-500 tree.

    Projections go to ``OCTA(OPL_BM|ILM_OPL|FULL)/<id>.bmp`` and labels to ``GT_*/<id>.bmp``
    ({0, 255}) in the chosen layout; a ``synthetic.json`` beside them records how the tree was made.
    Writing the same arguments again reproduces every file byte for byte.

    Args:
        root: the dataset folder to create or extend.
        fov: "3M" or "6M".
        n: number of subjects; ids come from the FoV's range spread over the standard split.
        seed: tree seed; each subject's own seed is ``sample_seed(seed, id)``.
        layout: "official" (release tree) or "samocta" (the SAM-OCTA code's re-arrangement).
        size: pixels per side (default the FoV's own 304 / 400).
        config: generator tunables.
        progress: show a progress bar.

    Returns:
        the subject ids written.
    """
    from tqdm.auto import tqdm

    if fov not in FOVS:
        raise SynthError(f"unknown field of view {fov!r}; expected one of {FOVS}")
    if layout not in LAYOUT_DIRS:
        raise SynthError(f"unknown layout {layout!r}; expected one of {tuple(LAYOUT_DIRS)}")
    if size is not None and not 32 <= size <= MAX_IMAGE_SIDE:
        raise SynthError(f"the image size (--size) must be 32 to {MAX_IMAGE_SIDE} px; got {size}")
    root = Path(root)
    fov_dirs, proj, shared_labels = LAYOUT_DIRS[layout]
    fov_dir = root / fov_dirs[fov]
    label_dir = root / "Label" if shared_labels else fov_dir
    ids = synthetic_ids(fov, n)
    subjects = {}
    for sid in tqdm(ids, desc=f"synthetic {fov}", disable=not progress):
        sample = make_sample(fov, sample_seed(seed, sid), size, config)
        subjects[str(sid)] = {"faz": sample.meta["faz_kind"], "faz_area_mm2": round(sample.meta["faz_area_mm2"], 4)}
        for c, layer in enumerate(LAYERS):
            write_grey(fov_dir / proj / f"OCTA({layer})" / f"{sid}.bmp", sample.image[..., c])
        for task, folder in TASK_FOLDERS.items():
            write_grey(label_dir / folder / f"{sid}.bmp", sample.labels[task])
    manifest = {
        "generator": f"samocta {__version__} synth",
        "generator_version": GENERATOR_VERSION,
        "fov": fov,
        "seed": seed,
        "size": size,
        "layout": layout,
        "ids": ids,
        "config": (config or SynthConfig()).__dict__,
        # what a reader may want to stratify by: the FAZ of each subject, healthy or that of
        # diabetic retinopathy (enlarged and ragged), and its area
        "subjects": subjects,
    }
    atomic_write_text(root / f"synthetic-{fov}.json", json.dumps(manifest, indent=1) + "\n")
    return ids


def subject_facts(root: str | os.PathLike, fov: str) -> dict[int, dict]:
    """What the manifest of a synthetic tree records of each subject (``{}`` for real data).

    Returns:
        id -> ``{"faz": "healthy" | "diabetic retinopathy", "faz_area_mm2": float}``.
    """
    manifest = Path(root) / f"synthetic-{fov}.json"
    if not manifest.exists():
        return {}
    return {int(k): v for k, v in json.loads(manifest.read_text()).get("subjects", {}).items()}


def ensure_synthetic(
    root: str | os.PathLike, fov: str = "3M", n: int = 40, seed: int = 0, layout: str = "official", size: int | None = None
) -> Path:
    """A synthetic tree at ``root``, written only if the one there was made with other arguments
    or by an older generator.

    Notebooks call this so that every chapter runs on its own and a build writes the data once.
    """
    root = Path(root)
    manifest = root / f"synthetic-{fov}.json"
    if manifest.exists():
        made = json.loads(manifest.read_text())
        wanted = (GENERATOR_VERSION, seed, size, layout, n)
        if (made.get("generator_version", 1), made.get("seed"), made.get("size"), made.get("layout"), len(made.get("ids", []))) == wanted:
            return root
    write_octa500(root, fov, n, seed, layout=layout, size=size)
    return root
