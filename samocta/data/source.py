"""Opening any dataset the package reads: an OCTA-500 tree (either layout) or a folder dataset.

``open_dataset(root, ...)`` is what every command and chapter calls with the path a user gives;
both indexes answer the same questions (``ids``, ``tasks``, ``projections``, ``channels``,
``fov``, ``fov_mm``, ``name``, ``read``, ``load``, ``path``, ``validate``, ``summary``,
``own_split``), so training, evaluation and prediction never ask which one they hold.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

from samocta.core.errors import DatasetError
from samocta.core.vocabulary import AUTO, check_fov_mm, parse_channels
from samocta.data.channels import ChannelsError, check_adapter_channels
from samocta.data.folder import FolderDataset
from samocta.data.octa500 import FOV_MM, LAYERS, OCTA500, octa500_fovs

Dataset = Union[OCTA500, FolderDataset]


def open_dataset(
    root: str | os.PathLike,
    fov: str | None = None,
    channels: str | tuple[str, ...] | None = AUTO,
    fov_mm: float | None = None,
    label_task: str | None = None,
) -> Dataset:
    """The index of the dataset at ``root``.

    Args:
        root: an OCTA-500 tree (the dataset folder, its parent or a FoV folder) or a folder dataset
            (``samocta.data.folder``), or a folder up to two levels above one.
        fov: "3M" or "6M" for an OCTA-500 tree (None: the one it holds); refused for a folder dataset.
        channels: what fills SAM's three channels ("auto": the paper's three projections for
            OCTA-500, a folder's own projections).
        fov_mm: a folder dataset's width in mm (OCTA-500 knows its own; a different value is refused).
        label_task: the task of a folder dataset's single, unnamed ``label/`` folder.

    Raises:
        DatasetError: no dataset at ``root``, an OCTA-500 tree with both FoVs and no ``fov``, or
            options that contradict the data.
    """
    root = Path(root).expanduser()
    fov_mm = check_fov_mm(fov_mm, "--fov-mm")
    if not root.is_dir():
        raise DatasetError(f"dataset root does not exist or is not a folder: {root}")
    fovs = octa500_fovs(root)
    if fovs:
        if fov is None:
            if len(fovs) > 1:
                raise DatasetError(f"{root} holds OCTA-500 {' and '.join(fovs)} data: choose one with --fov")
            fov = fovs[0]
        if fov_mm is not None and abs(float(fov_mm) - FOV_MM.get(fov, -1)) > 1e-9:
            raise DatasetError(f"--fov-mm {fov_mm:g} disagrees with OCTA-500 {fov}, {FOV_MM.get(fov, '?')} mm wide; leave "
                               "--fov-mm out for an OCTA-500 tree")
        return OCTA500(root, fov, LAYERS if channels in (None, AUTO) else channels)
    if fov is not None:
        raise DatasetError(
            f"--fov {fov} picks the 3M or 6M part of an OCTA-500 tree, and {root} holds none; a folder dataset's field "
            "of view is its width in mm: give --fov-mm (or fov_mm in its dataset.json) instead"
        )
    return FolderDataset(root, channels, fov_mm, label_task)


def open_for_adapter(
    root: str | os.PathLike,
    channels: str,
    fov: str | None = None,
    fov_mm: float | None = None,
    label_task: str | None = None,
) -> Dataset:
    """``open_dataset`` for data an adapter trained with ``channels`` is applied to.

    Raises:
        DatasetError: as ``open_dataset``, or the data lacks a projection the adapter was trained
            with (the message names what the adapter needs, what the data has and the fix).
    """
    try:
        return open_dataset(root, fov, channels, fov_mm, label_task)
    except ChannelsError as exc:
        check_adapter_channels(parse_channels(channels), exc.projections, str(root))
        raise


def dataset_slug(index: Dataset) -> str:
    """A short file-name-safe name of a dataset (``results-on-<slug>.csv``): its folder's name and FoV,
    then 8 hex digits of its resolved place, so two datasets in folders of one name (siteA/scans,
    siteB/scans) never share a result file."""
    import hashlib

    base = index.root.name if index.kind == "folder" else f"{Path(index.root).name}-{index.fov}"
    place = hashlib.sha256(f"{Path(index.where).resolve()}|{index.fov}".encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', base).strip('_') or 'data'}-{place}"


def same_dataset(a: Dataset, b: Dataset) -> bool:
    """Whether two indexes read the same files (the same folder and, for OCTA-500, the same FoV)."""
    return Path(a.where).resolve() == Path(b.where).resolve() and a.fov == b.fov


def check_subjects(index: Dataset, ids: Sequence, task: str, tasks: Sequence[str]) -> dict:
    """Read every subject a run will use, before its first step, and refuse with every problem at once:
    unreadable or mis-oriented files, empty labels, images of different sizes.

    Args:
        index: the dataset; ids: the subjects; task: the label that must not be empty; tasks: the
            labels to read (the task's, and for arteries and veins the other's, as prompts need).

    Returns:
        the subjects, read once for the whole run (training and validation use them from here).
    """
    problems, sizes, samples = [], {}, {}
    for sid in ids:
        sample, found = index.read(sid, list(tasks))
        problems += found
        if sample is not None:
            samples[sid] = sample
            sizes.setdefault(sample.image.shape[:2], []).append(sid)
            if not sample.labels[task].any():
                problems.append(f"{index.path(sid, task)}: the {task} label is empty; a run cannot learn or score it")
    if len(sizes) > 1:
        problems.append("subjects of different sizes: " + "; ".join(f"{s[0]}x{s[1]}: {v[:5]}" for s, v in sizes.items()))
    if problems:
        shown = "\n  - ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise DatasetError(f"{len(problems)} problem(s) in the subjects this run reads (check-data lists them all):\n  - {shown}",
                           problems)
    return samples
