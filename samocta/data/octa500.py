"""OCTA-500 as distributed: the official release tree and the re-arranged tree of the SAM-OCTA code.

Both trees hold, per field of view (FoV), three OCTA en-face projections and five 2-D labels per
subject id. The FoV of an id comes from its number (3M: 10301-10500, 6M: 10001-10300), never from a
folder name. See ``shared/reference/octa500.md`` in the project for the facts this module relies on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samocta.core.errors import DatasetError
from samocta.core.vocabulary import FOVS, PAPER, TASKS, check_fov_mm
from samocta.data.channels import fill_channels, resolve_channels
from samocta.data.ids import SampleId
from samocta.data.imageio import IMAGE_SUFFIXES, read_grey
from samocta.data.reading import label_checks, read_label, read_or_raise

if TYPE_CHECKING:
    from samocta.data.splits import Split

FOV_ID_RANGE = {"3M": (10301, 10500), "6M": (10001, 10300)}
FOV_SIZE = {"3M": 304, "6M": 400}
FOV_MM = {"3M": 3.0, "6M": 6.0}
TASK_FOLDERS = {
    "RV": "GT_LargeVessel",
    "FAZ": "GT_FAZ",
    "Capillary": "GT_Capillary",
    "Artery": "GT_Artery",
    "Vein": "GT_Vein",
}
# The paper's channel order: outer retina, inner retina, full depth -> SAM's R, G, B statistics.
LAYERS = PAPER

# layout -> (FoV folder per FoV, projection folder, labels in one shared Label/ folder under the
# dataset root (the official release) rather than in the FoV folder (the SAM-OCTA code's tree))
LAYOUT_DIRS = {
    "official": ({"3M": "OCTA_3mm", "6M": "OCTA_6mm"}, "Projection Maps", True),
    "samocta": ({"3M": "OCTA_3M", "6M": "OCTA_6M"}, "ProjectionMaps", False),
}
LAYOUTS: tuple[str, ...] = tuple(LAYOUT_DIRS)
SYNTHETIC_MANIFEST = "synthetic-{fov}.json"  # what samocta.synth writes beside a synthetic tree


def fov_of(sample_id: int) -> str | None:
    """The FoV ("3M" or "6M") an OCTA-500 subject id belongs to, or None outside both ranges."""
    if not isinstance(sample_id, int):
        return None
    for fov, (lo, hi) in FOV_ID_RANGE.items():
        if lo <= sample_id <= hi:
            return fov
    return None


def pixel_size_um(fov: str | float, size: int | None = None) -> float:
    """Lateral pixel size in micrometres of an en-face image ``size`` pixels wide.

    Args:
        fov: an OCTA-500 FoV ("3M", "6M") or the image's width in mm.
        size: its width in pixels (default: the OCTA-500 FoV's own 304 / 400).
    """
    if isinstance(fov, str):
        return FOV_MM[fov] * 1000.0 / (size or FOV_SIZE[fov])
    if size is None:
        raise ValueError("pixel_size_um needs the image width in pixels with a width in mm")
    return float(fov) * 1000.0 / size


def fov_mm_option(text: str) -> float:
    """``argparse`` type of every ``--fov-mm``: ``check_fov_mm`` at parse time, before any work."""
    import argparse

    from samocta.core.errors import DatasetError

    try:
        return check_fov_mm(text, "--fov-mm")
    except DatasetError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--fov-mm is ")) from None


def fov_label(fov_mm: float | None) -> str:
    """How tables name a field of view: "3M" for 3 mm (OCTA-500's name), "4.5M" for 4.5 mm, "unknown"."""
    return "unknown" if fov_mm is None else f"{fov_mm:g}M"


def _check_fov(fov: str) -> str:
    if fov not in FOVS:
        raise DatasetError(f"unknown field of view {fov!r}; expected one of {FOVS}")
    return fov


@dataclass
class Sample:
    """One subject: the stacked projections and the binary labels.

    Attributes:
        id: the OCTA-500 subject id (e.g. 10301), or a folder dataset's file stem (see ``samocta.data.ids``).
        fov: "3M" or "6M", or a folder dataset's ``fov_label`` ("4.5M", "unknown").
        image: uint8 ``(H, W, 3)``, SAM's three channels as the index fills them (``channels``).
        labels: task name -> bool ``(H, W)``.
        meta: free-form extras (synthetic samples keep their generator facts here).
        fov_mm: the image's width in mm (None: unknown; measurements in mm are then refused).
    """

    id: SampleId
    fov: str
    image: np.ndarray
    labels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    fov_mm: float | None = None

    @property
    def pixel_um(self) -> float | None:
        """The lateral pixel size in µm (None when the width in mm is unknown)."""
        return None if self.fov_mm is None else self.fov_mm * 1000.0 / self.image.shape[1]


def octa500_fovs(root: str | os.PathLike) -> list[str]:
    """The FoVs an OCTA-500 tree at ``root`` (or one folder below it) holds, in either layout."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    # the places OCTA500 looks in: the folder, its parent when it is a FoV folder, the folders in it
    fov_names = {name for dirs, _, _ in LAYOUT_DIRS.values() for name in dirs.values()}
    candidates = [root] + ([root.parent] if root.name in fov_names else [])
    candidates += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [fov for fov in FOVS
            if any((base / dirs[fov] / proj).is_dir() for base in candidates for dirs, proj, _ in LAYOUT_DIRS.values())]


class OCTA500:
    """Index of an OCTA-500 tree for one FoV, in the official or the SAM-OCTA layout.

    Official release::

        <root>/OCTA_3mm/Projection Maps/OCTA(FULL)/<id>.bmp   (and OCTA(ILM_OPL), OCTA(OPL_BM))
        <root>/Label/GT_LargeVessel/<id>.bmp                   (GT_FAZ, GT_Capillary, GT_Artery, GT_Vein)

    Re-arranged tree of the SAM-OCTA code::

        <root>/OCTA_3M/ProjectionMaps/OCTA(FULL)/<id>.bmp
        <root>/OCTA_3M/GT_LargeVessel/<id>.bmp

    Args:
        root: the dataset folder, its parent, or the FoV folder itself.
        fov: "3M" or "6M".
        channels: what fills SAM's three channels (``samocta.data.channels``): the paper's
            ``LAYERS`` by default, one projection (repeated), or three names. Only the projections
            named are read, so a tree that holds some of them serves a run that uses those.

    Attributes:
        layout: "official" or "samocta".
        ids: sorted subject ids present on disk (any projection the channels use) within the FoV's id range.
        tasks: tasks whose label folder exists; ``missing_tasks`` the others.
        projections: the projections that have files; ``channels`` the three names used.
        fov_mm: the FoV's width in mm (3 or 6).
        source: "synthetic" for a tree written by ``samocta.synth``, else "OCTA-500"; ``name`` says it with the FoV.

    Raises:
        DatasetError: the root does not exist or holds no data of this FoV, or a channel names a
            projection the tree lacks.
    """

    kind = "OCTA-500"

    def __init__(self, root: str | os.PathLike, fov: str, channels: str | tuple[str, ...] = LAYERS) -> None:
        self.fov = _check_fov(fov)
        self.fov_mm = FOV_MM[self.fov]
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"dataset root does not exist or is not a folder: {root}")
        self.layout, self.fov_dir, self.label_dir = self._locate(root)
        self.root = root
        self.where = self.fov_dir
        proj_dir = self.fov_dir / LAYOUT_DIRS[self.layout][1]
        self._files: dict[str, dict[int, Path]] = {}
        self.stray: list[str] = []  # files whose id belongs to no FoV or to the other one
        for layer in LAYERS:
            self._files[layer] = self._scan(proj_dir / f"OCTA({layer})", projection=True)
        self.projections: tuple[str, ...] = tuple(layer for layer in LAYERS if self._files[layer])
        self.channels = resolve_channels(channels, LAYERS, "an OCTA-500 tree")
        self.used = tuple(dict.fromkeys(self.channels))  # the projections read, each once
        self.tasks: tuple[str, ...] = tuple(t for t in TASKS if (self.label_dir / TASK_FOLDERS[t]).is_dir())
        self.missing_tasks: tuple[str, ...] = tuple(t for t in TASKS if t not in self.tasks)
        for task in self.tasks:
            self._files[task] = self._scan(self.label_dir / TASK_FOLDERS[task], projection=False)
        self.ids: list[int] = sorted(set().union(*(self._files[layer].keys() for layer in self.used)))
        if not self.ids:
            names = ", ".join(f"OCTA({layer})" for layer in self.used)
            raise DatasetError(
                f"no {fov} projection maps under {proj_dir}: expected files named <id>.bmp or <id>.png "
                f"with ids {FOV_ID_RANGE[fov][0]}-{FOV_ID_RANGE[fov][1]} in {names}"
            )
        manifest = SYNTHETIC_MANIFEST.format(fov=self.fov)
        synthetic = any((base / manifest).is_file() for base in (root, root.parent, self.fov_dir.parent))
        self.source = "synthetic" if synthetic else "OCTA-500"
        self.name = f"{self.source} {self.fov}"

    def own_split(self) -> "Split":
        """The split this data comes with: OCTA-500's standard (IPN-V2) split of the ids present."""
        from samocta.data.splits import standard_split

        return standard_split(self.fov, available=self.ids)

    def _locate(self, root: Path) -> tuple[str, Path, Path]:
        candidates = [root]
        if any(root.name in dirs.values() for dirs, _, _ in LAYOUT_DIRS.values()):
            candidates.append(root.parent)
        candidates += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for base in candidates:
            for layout, (fov_dirs, proj, shared_labels) in LAYOUT_DIRS.items():
                fov_dir = base / fov_dirs[self.fov]
                if (fov_dir / proj).is_dir():
                    label_dir = base / "Label" if shared_labels else fov_dir
                    return layout, fov_dir, label_dir
        other = [f for f in FOVS if f != self.fov]
        found_other = any(
            (base / dirs[o] / proj).is_dir() for base in candidates for dirs, proj, _ in LAYOUT_DIRS.values() for o in other
        )
        hint = f" (it holds {other[0]} data: did you mean fov={other[0]!r}?)" if found_other else ""
        off, sam = (LAYOUT_DIRS[k][0][self.fov] for k in ("official", "samocta"))
        raise DatasetError(
            f"no OCTA-500 {self.fov} data under {root}{hint}: expected "
            f"'{off}/Projection Maps/OCTA(FULL)/<id>.bmp' with 'Label/GT_*' (official release) or "
            f"'{sam}/ProjectionMaps/OCTA(FULL)/<id>.bmp' with '{sam}/GT_*' (SAM-OCTA layout), "
            "in that folder or one below it"
        )

    def _scan(self, folder: Path, projection: bool) -> dict[int, Path]:
        files: dict[int, Path] = {}
        if not folder.is_dir():
            return files
        # .bmp wins over .png for the same id: it is the release's own format.
        for path in sorted(folder.iterdir(), key=lambda p: IMAGE_SUFFIXES.index(p.suffix.lower()) if p.suffix.lower() in IMAGE_SUFFIXES else 9, reverse=True):
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue  # hidden files (macOS's ._ copies among them) are no scans, here as in a folder dataset
            if not (path.stem.isascii() and path.stem.isdigit()):  # "10301²" is digits to str.isdigit
                if projection:
                    self.stray.append(f"{path}: not named <id>{path.suffix} with an id of ASCII digits; ignored")
                continue
            sid = int(path.stem)
            owner = fov_of(sid)
            if owner == self.fov:
                if sid in files and files[sid].suffix.lower() == path.suffix.lower():
                    self.stray.append(f"{path} and {files[sid]}: two files for id {sid}; keep one")
                files[sid] = path
            elif projection:
                where = f"belongs to {owner}" if owner else "is in neither FoV's range"
                self.stray.append(f"{path}: id {sid} {where}, found among {self.fov} projections; ignored")
        return files

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"OCTA500(root={str(self.root)!r}, fov={self.fov!r}, layout={self.layout!r}, ids={len(self.ids)}, tasks={self.tasks})"

    def path(self, sample_id: int, name: str) -> Path:
        """Where the file for a layer (``LAYERS``) or a task (``TASKS``) of ``sample_id`` is, or should be."""
        if name in LAYERS:
            folder = self.fov_dir / LAYOUT_DIRS[self.layout][1] / f"OCTA({name})"
        elif name in TASKS:
            folder = self.label_dir / TASK_FOLDERS[name]
        else:
            raise KeyError(f"{name!r} is neither a layer {LAYERS} nor a task {TASKS}")
        return self._files.get(name, {}).get(sample_id, folder / f"{sample_id}.bmp")

    def read(self, sample_id: int, tasks: tuple[str, ...], check_orientation: bool = True) -> tuple[Sample | None, list[str]]:
        """``load`` that reports instead of raising: the sample (None if anything is wrong) and every
        problem found, each naming its path (for checks that list all problems at once)."""
        problems: list[str] = []
        channels: dict[str, np.ndarray] = {}
        for layer in self.used:
            path = self.path(sample_id, layer)
            if sample_id not in self._files[layer]:
                problems.append(f"missing projection: {path}")
                continue
            try:
                channels[layer] = read_grey(path)
            except DatasetError as exc:
                problems.append(str(exc))
        shapes = {layer: a.shape for layer, a in channels.items()}
        if len(set(shapes.values())) > 1:
            problems.append(f"id {sample_id}: projection sizes differ: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))
        ref_shape = channels["FULL"].shape if "FULL" in channels else next(iter(shapes.values()), None)
        labels: dict[str, np.ndarray] = {}
        for task in tasks:
            path = self.path(sample_id, task)
            if task not in self.tasks or sample_id not in self._files[task]:
                problems.append(f"missing label: {path}")
                continue
            label, found = read_label(path, ref_shape)
            problems += found
            if label is not None:
                labels[task] = label
        if check_orientation:
            problems += label_checks(labels, channels, self.fov_mm, lambda name: self.path(sample_id, name))
        if problems:
            return None, problems
        image = fill_channels(channels, self.channels)
        return Sample(id=sample_id, fov=self.fov, image=image, labels=labels, fov_mm=self.fov_mm), []

    def load(self, sample_id: int, tasks: tuple[str, ...] | list[str] | None = None, check_orientation: bool = True) -> Sample:
        """Read one subject.

        Args:
            sample_id: an id from ``self.ids``.
            tasks: the labels to read; default every task present in this tree.
            check_orientation: check each label against what it can be (``samocta.data.labelcheck``:
                not empty, a plausible foreground share, the FAZ one central region on the dark
                centre) and correlate each vessel label with the FULL projection (ILM_OPL when
                FULL is not read) over the 8 rotations/flips, refusing a label that matches best
                when transformed (``samocta.data.reading.label_checks``).

        Returns:
            the ``Sample``, image uint8 ``(H, W, 3)`` filled as ``self.channels`` say, labels bool ``(H, W)``.

        Raises:
            DatasetError: listing every problem of this subject (missing or unreadable files with
                their paths, size mismatches, non-binary labels, a mis-oriented label).
        """
        if sample_id not in self.ids:
            owner = fov_of(sample_id)
            where = f"it is a {owner} id" if owner and owner != self.fov else f"not found under {self.fov_dir}"
            raise DatasetError(f"id {sample_id} is not in this {self.fov} index ({where})")
        return read_or_raise(self.read, sample_id, self.tasks if tasks is None else tasks, TASKS, check_orientation,
                             f"id {sample_id}")

    def validate(self, check_orientation: bool = True, progress: bool = False) -> list[str]:
        """Every problem of the tree, one message per problem, each naming its path.

        Tasks whose whole label folder is absent are not problems (see ``missing_tasks``).
        """
        from tqdm.auto import tqdm

        problems = list(self.stray)
        sizes: dict[tuple[int, int], list[int]] = {}
        for sid in tqdm(self.ids, desc=f"checking {self.fov}", disable=not progress, leave=False):
            sample, found = self.read(sid, self.tasks, check_orientation)
            problems.extend(found)
            if sample is not None:
                sizes.setdefault(sample.image.shape[:2], []).append(sid)
        if len(sizes) > 1:  # one FoV of OCTA-500 is one size: another is a subject from elsewhere, or resized
            common = max(sizes, key=lambda k: len(sizes[k]))
            for size, ids in sizes.items():
                if size != common:
                    problems += [f"{self.path(sid, self.used[0])}: {size[1]} x {size[0]} px, where the tree's other subjects "
                                 f"are {common[1]} x {common[0]}; one FoV of OCTA-500 is one size: replace it" for sid in ids]
        return problems

    def summary(self) -> str:
        """A short human-readable description: layout, ids, labels per task, image size."""
        lines = [
            f"{self.name} ({self.layout} layout of OCTA-500) at {self.fov_dir}",
            f"  ids: {len(self.ids)} ({self.ids[0]}-{self.ids[-1]})",
        ]
        for layer in LAYERS:
            used = "" if layer in self.used else " (not used: channels " + ",".join(self.channels) + ")"
            lines.append(f"  projection {layer:<8} {len(self._files[layer])} files{used}")
        for task in TASKS:
            n = len(self._files[task]) if task in self.tasks else 0
            state = f"{n} labels" if task in self.tasks else f"absent (no {self.label_dir / TASK_FOLDERS[task]})"
            lines.append(f"  task {task:<10} {state}")
        first = self.path(self.ids[0], self.used[0])
        try:
            h, w = read_grey(first).shape
            nominal = FOV_SIZE[self.fov]
            note = "" if (h, w) == (nominal, nominal) else f" (the release has {nominal}x{nominal})"
            lines.append(f"  image size: {h}x{w}{note}")
        except DatasetError as exc:
            lines.append(f"  image size: unknown ({exc})")
        return "\n".join(lines)
