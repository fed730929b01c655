"""A dataset of your own folders: en-face images and labels matched by file stem.

Read in the folder given, or in one up to two levels below it (``dataset/OCTA500_3M/`` of the
public single-projection copy of OCTA-500)::

    <dataset>/images/<stem>.png              a grey image is one projection, an RGB image three
    <dataset>/images/<PROJECTION>/<stem>.png several projections per subject, a folder each
    <dataset>/labels/<TASK>/<stem>.png       a folder per task: RV, FAZ, Capillary, Artery, Vein
                                             (or OCTA-500's GT_LargeVessel, GT_FAZ, ...)
    <dataset>/label/<stem>.png               one task: named in dataset.json, else the run's --task
    <dataset>/{train,val,test}/...           the same inside each split folder (ROSSA, the public copy)
    <dataset>/dataset.json                   optional: fov_mm, projections, tasks, split, name

``image/`` may stand for ``images/`` (ROSSA and the public copy name it so). Files are PNG, BMP,
TIFF or JPEG (images only: labels must be lossless), ids are the file stems as they are
("0042", "patient_A_OD"). A scan's physical width comes from ``fov_mm`` (the option ``--fov-mm``
or ``dataset.json``); without it, pixel metrics work and measurements in mm are refused.

Everything that would make a run wrong is refused when the folder is opened, each problem naming
its file and the fix: a label without an image or an image without a label, two files with one
stem, images of different sizes, an unknown task folder, a ``dataset.json`` that disagrees with
the folders. Labels are checked as they are read (binary, grey, the image's size, plausible).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from samocta.core.errors import DatasetError
from samocta.core.files import UnreadableFileError, read_json
from samocta.core.vocabulary import TASKS, check_fov_mm
from samocta.data.channels import fill_channels, resolve_channels
from samocta.data.ids import sorted_ids
from samocta.data.imageio import FOLDER_SUFFIXES, image_size, read_image
from samocta.data.octa500 import TASK_FOLDERS, Sample, fov_label
from samocta.data.reading import label_checks, read_label, read_or_raise

if TYPE_CHECKING:
    from samocta.data.splits import Split

DATASET_JSON = "dataset.json"


class LayoutError(DatasetError):
    """A folder dataset's files do not fit together; ``problems`` lists each, with its file and the fix."""


DATASET_KEYS = ("name", "fov_mm", "projections", "tasks", "split", "synthetic")
IMAGE_DIRS = ("images", "image")
LABEL_DIRS = ("labels", "label")
# split folder name -> part (ROSSA and the public copy say "val"; others "valid" or "validation")
PART_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
             "testing": "test"}
UNNAMED_ONE = "enface"  # a grey image's projection when dataset.json does not name it
UNNAMED_THREE = ("R", "G", "B")  # an RGB image's three, likewise
_TASK_NAMES = {**{t.lower(): t for t in TASKS}, **{folder.lower(): t for t, folder in TASK_FOLDERS.items()}}


def _images(folder: Path) -> tuple[dict[str, Path], list[str], list[str]]:
    """stem -> file of the image files in ``folder``, with the problems (two files for one stem) and
    notes (files that are no images, ignored)."""
    files: dict[str, Path] = {}
    problems, notes = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():  # hidden files (macOS's ._ copies among them) are no scans
            continue
        if path.suffix.lower() in FOLDER_SUFFIXES and not path.is_file():
            problems.append(f"{path}: named like an image but not a regular file (a link to nothing, a FIFO, a device); "
                            "replace it with the image file")
            continue
        if path.suffix.lower() not in FOLDER_SUFFIXES:
            notes.append(f"{path}: not an image ({', '.join(FOLDER_SUFFIXES)}); ignored")
            continue
        if path.stem in files:
            problems.append(f"{path} and {files[path.stem]}: two files with the stem {path.stem!r}; keep one")
            continue
        files[path.stem] = path
    return files, problems, notes


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in FOLDER_SUFFIXES and not p.name.startswith(".") and p.is_file() for p in folder.iterdir())


def split_part(name: str) -> str | None:
    """The part of the split a folder's name says: "train", "val", "test" or None.

    ``train``/``val``/``test`` and their long forms, or such a word followed by ``_``, ``-`` or a
    space and more (ROSSA's ``train_manual`` and ``train_sam`` are both training data)."""
    head = re.split(r"[_\- ]", name.lower(), maxsplit=1)[0]
    return PART_DIRS.get(head)


def split_folders(folder: Path) -> list[tuple[str, Path]]:
    """The split folders of ``folder``: ``(part, path)`` of each subfolder ``split_part`` names, in name order."""
    return [(part, sub) for sub in _subfolders(folder) if (part := split_part(sub.name)) is not None]


def _is_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds an image folder, or split folders that each do."""
    if any((folder / d).is_dir() for d in IMAGE_DIRS):
        return True
    parts = split_folders(folder)
    return bool(parts) and all(any((p / d).is_dir() for d in IMAGE_DIRS) for _, p in parts)


def find_dataset(root: Path) -> tuple[Path, bool]:
    """The dataset folder at or below ``root`` (two levels at most), and whether it is a bare folder of
    images (no ``images/`` folder, no labels: what ``predict`` reads).

    Raises:
        DatasetError: no dataset there, or several (named, so that one can be chosen).
    """
    if _is_dataset(root):
        return root, False
    level = [root]
    for _ in range(2):
        level = [sub for folder in level for sub in _subfolders(folder)]
        found = [folder for folder in level if _is_dataset(folder)]
        if len(found) == 1:
            return found[0], False
        if len(found) > 1:
            raise DatasetError(f"{root} holds {len(found)} datasets ({', '.join(str(f) for f in found[:6])}); give one of them")
    if _has_images(root):
        return root, True
    raise DatasetError(
        f"no dataset under {root}: expected images/<stem>.png (or image/) with labels/<TASK>/<stem>.png or label/<stem>.png, "
        "optionally inside train/, val/ and test/ folders, or an OCTA-500 tree (either layout); see "
        "'Using your own data' in the README"
    )


@dataclass
class _Part:
    """One split folder (or the whole dataset): its image files per projection and label files per task."""

    name: str | None
    images: dict[str, dict[str, Path]]  # projection -> stem -> file ("" for files holding every projection)
    labels: dict[str, dict[str, Path]]  # task -> stem -> file (None key: the unnamed single task)


class FolderDataset:
    """Index of a dataset in folders of your own (see the module's docstring for the layouts).

    Args:
        root: the dataset folder, or a folder up to two levels above it.
        channels: what fills SAM's three channels (``samocta.data.channels``; "auto": the images'
            own projections: three, or one repeated).
        fov_mm: the scans' width in mm (also read from ``dataset.json``; the two must agree).
        label_task: the task of a single ``label/`` folder that ``dataset.json`` does not name
            (a run passes its own task).

    Attributes:
        ids: file stems, in natural order; tasks: the tasks with labels; projections: what the
            images hold; channels: the three names SAM's channels take; fov_mm, fov (``fov_label``);
            name (dataset.json's, else the folder's); source ("synthetic" for data written by
            ``samocta.synth``, else the name).

    Raises:
        DatasetError: the layout is inconsistent; ``.problems`` lists every problem, each with its file.
    """

    kind = "folder"

    def __init__(
        self,
        root: str | os.PathLike,
        channels: str | tuple[str, ...] | None = "auto",
        fov_mm: float | None = None,
        label_task: str | None = None,
    ) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"dataset root does not exist or is not a folder: {root}")
        self.root, bare = find_dataset(root)
        self.where = self.root
        self.stray: list[str] = []  # notes: files ignored
        problems: list[str] = []
        meta = self._read_meta(problems)
        self.name = str(meta.get("name") or self.root.name)
        self.source = "synthetic" if "synthetic" in meta else self.name  # what tables say the data is
        self.fov_mm = self._fov_mm(fov_mm, meta.get("fov_mm"), problems)
        self.fov = fov_label(self.fov_mm)
        named_task = self._named_task(meta, label_task, problems)
        part_dirs = split_folders(self.root) if not bare else []
        if part_dirs and any((self.root / d).is_dir() for d in IMAGE_DIRS):
            problems.append(f"{self.root}: holds both an images folder and split folders "
                            f"({', '.join(p.name for _, p in part_dirs)}); keep one form")
        if part_dirs:  # what lies beside the split folders is not read: said, never silently
            self.stray += [f"{sub}: not a split folder (train*, val*, test*); skipped" for sub in _subfolders(self.root)
                           if split_part(sub.name) is None]
        self.parts = [self._scan_part(name, folder, named_task, problems, bare) for name, folder in part_dirs] or [
            self._scan_part(None, self.root, named_task, problems, bare)]
        self._check_parts(problems)
        self.projections = self._projections(meta, problems)
        self.tasks = tuple(t for t in TASKS if any(t in part.labels for part in self.parts))
        named = {_TASK_NAMES.get(str(t).lower(), str(t)) for t in meta.get("tasks", [])}
        if named and self.tasks and named != set(self.tasks):
            problems.append(f"{self.root / DATASET_JSON}: tasks {sorted(named)} differ from the label folders' "
                            f"{list(self.tasks)}; make them agree")
        self.missing_tasks = tuple(t for t in TASKS if t not in self.tasks)
        self.unnamed_labels = any(None in part.labels for part in self.parts)
        self._index = {sid: part for part in self.parts for stems in part.images.values() for sid in stems}
        self.ids = sorted_ids(self._index)
        self._split = self._read_split(meta, part_dirs, problems)
        # a plain folder of scans (what predict reads, no labels) may mix sizes: each scan is shown on its own
        self._size = self._check_sizes(problems) if not bare else None
        if not self.ids and not problems:
            problems.append(f"no images under {self.root} ({', '.join(FOLDER_SUFFIXES)})")
        if problems:
            more = f" (and {len(problems) - 1} more; 'python -m samocta check-data {root}' lists them all)" if len(problems) > 1 else ""
            raise LayoutError(problems[0] + more, problems)
        self.channels = resolve_channels(channels, self.projections, str(self.root))
        self.used = tuple(dict.fromkeys(self.channels))

    # ----------------------------------------------------------------- opening
    def _read_meta(self, problems: list[str]) -> dict:
        path = self.root / DATASET_JSON
        if not path.exists() and not path.is_symlink():  # absent; a FIFO, a folder or a dangling link is refused below
            return {}
        try:
            meta = read_json(path, "dataset.json", "write it as JSON (see 'Using your own data'), or remove it",
                             max_bytes=16 << 20)
        except (OSError, UnreadableFileError) as exc:
            problems.append(str(exc))
            return {}
        if not isinstance(meta, dict):
            problems.append(f"{path}: expected an object with some of {', '.join(DATASET_KEYS)}")
            return {}
        unknown = sorted(set(meta) - set(DATASET_KEYS))
        if unknown:
            problems.append(f"{path}: unknown key(s) {', '.join(unknown)}; it may hold {', '.join(DATASET_KEYS)}")
        for key, kind in (("projections", list), ("tasks", list), ("split", dict)):
            if key in meta and not isinstance(meta[key], kind):
                problems.append(f"{path}: '{key}' must be a {'list' if kind is list else 'object'}")
                meta.pop(key)
        return meta

    def _fov_mm(self, given: float | None, recorded: object, problems: list[str]) -> float | None:
        path = self.root / DATASET_JSON
        if recorded is not None:
            try:  # a JSON number (text such as "3" is not one)
                recorded = check_fov_mm(recorded if isinstance(recorded, (int, float)) else f"{recorded!r} (text)",
                                        f"{path}: fov_mm")
            except DatasetError as exc:
                problems.append(str(exc))
                recorded = None
        if given is not None and recorded is not None and abs(float(given) - float(recorded)) > 1e-9:
            problems.append(f"--fov-mm {given:g} disagrees with {path} (fov_mm {recorded:g}); give one of them")
        value = given if given is not None else recorded
        return None if value is None else float(value)

    def _named_task(self, meta: dict, label_task: str | None, problems: list[str]) -> str | None:
        """The task of a single label folder: dataset.json's, else the caller's."""
        tasks = meta.get("tasks")
        if tasks is not None and len(tasks) == 1:
            task = _TASK_NAMES.get(str(tasks[0]).lower())
            if task is None:
                problems.append(f"{self.root / DATASET_JSON}: unknown task {tasks[0]!r}; expected one of {', '.join(TASKS)}")
            return task
        return label_task

    def _scan_part(self, name: str | None, folder: Path, named_task: str | None, problems: list[str], bare: bool) -> _Part:
        images: dict[str, dict[str, Path]] = {}
        if bare:
            images[""], found, notes = _images(folder)
            problems += found
            self.stray += notes
            return _Part(name, images, {})
        present = [folder / d for d in IMAGE_DIRS if (folder / d).is_dir()]
        if len(present) > 1:
            problems.append(f"{folder}: holds both images/ and image/; keep one")
        if not present:
            problems.append(f"{folder}: no images/ (or image/) folder")
            return _Part(name, {}, {})
        image_dir = present[0]
        subs = [p for p in _subfolders(image_dir) if _has_images(p)]
        if subs and _has_images(image_dir):
            problems.append(f"{image_dir}: holds image files and projection folders ({', '.join(p.name for p in subs)}); "
                            "keep one form (images/<stem>.png, or images/<PROJECTION>/<stem>.png)")
        for projection_dir in subs or [image_dir]:
            key = projection_dir.name if subs else ""
            images[key], found, notes = _images(projection_dir)
            problems += found
            self.stray += notes
        return _Part(name, images, self._scan_labels(folder, named_task, problems))

    def _scan_labels(self, folder: Path, named_task: str | None, problems: list[str]) -> dict:
        labels: dict[str | None, dict[str, Path]] = {}
        present = [folder / d for d in LABEL_DIRS if (folder / d).is_dir()]
        if len(present) > 1:
            problems.append(f"{folder}: holds both labels/ and label/; keep one")
        for label_dir in present[:1]:
            subs = _subfolders(label_dir)
            if subs and _has_images(label_dir):
                problems.append(f"{label_dir}: holds label files and task folders; keep one form (labels/<TASK>/<stem>.png, "
                                "or label/<stem>.png for one task)")
            for sub in subs:
                task = _TASK_NAMES.get(sub.name.lower())
                if task is None:
                    problems.append(f"{sub}: unknown task folder; name it one of {', '.join(TASKS)} (or OCTA-500's "
                                    f"{', '.join(TASK_FOLDERS.values())})")
                    continue
                if task in labels:
                    problems.append(f"{sub}: a second folder for {task}; keep one")
                labels[task], found, notes = _images(sub)
                problems += found
                self.stray += notes
            if not subs:
                labels[named_task], found, notes = _images(label_dir)
                problems += found
                self.stray += notes
        return labels

    def _check_parts(self, problems: list[str]) -> None:
        """Every image has its label in each task folder and the reverse; every projection folder has
        the same stems; no stem in two split folders."""
        seen: dict[str, str | None] = {}
        for part in self.parts:
            stems = set().union(*part.images.values()) if part.images else set()
            reference = {stem: next(f[stem] for f in part.images.values() if stem in f) for stem in stems}
            for projection, files in part.images.items():
                for stem in sorted(stems - set(files), key=str):
                    folder = reference[stem].parent.parent / projection
                    problems.append(f"{folder}: no image with the stem {stem!r}, which {reference[stem]} has; every "
                                    "projection folder needs every subject")
            for task, files in part.labels.items():
                folder = next(iter(files.values())).parent if files else None
                for stem in sorted(set(files) - set(reference), key=str):
                    problems.append(f"{files[stem]}: a label without an image (no {stem}.* among the images); add the "
                                    "image or remove the label")
                for stem in sorted(set(reference) - set(files), key=str):
                    where = folder or f"the {task or 'label'} folder"
                    problems.append(f"{reference[stem]}: an image without a label in {where}; add its label, or move the "
                                    "unlabelled scan out of the dataset (predict reads a folder of images alone)")
            for stem in reference:
                if stem in seen:
                    problems.append(f"{reference[stem]}: the stem {stem!r} is in two split folders ({seen[stem]} and "
                                    f"{part.name}); a subject belongs to one")
                seen[stem] = part.name

    def _projections(self, meta: dict, problems: list[str]) -> tuple[str, ...]:
        """The projection names: the folders' (images/<PROJECTION>/), or dataset.json's, or generic ones."""
        keys = list(self.parts[0].images) if self.parts and self.parts[0].images else []
        named = [str(n) for n in meta.get("projections", [])]
        path = self.root / DATASET_JSON
        if keys and keys != [""]:
            if any(list(part.images) != keys for part in self.parts):
                problems.append(f"{self.root}: split folders hold different projection folders; every one needs the same")
            if named and set(named) != set(keys):
                problems.append(f"{path}: projections {named} differ from the folders {keys}; make them agree")
            return tuple(named) if named and set(named) == set(keys) else tuple(keys)
        first = next((f for part in self.parts for f in part.images.get("", {}).values()), None)
        if first is None:
            return tuple(named)
        try:
            count = 3 if read_image(first).ndim == 3 else 1
        except DatasetError as exc:
            problems.append(str(exc))
            return tuple(named)
        if named and len(named) != count:
            problems.append(f"{path}: {len(named)} projection name(s) for images holding {count} ({first}); "
                            f"give {'one name' if count == 1 else 'three names, in R, G, B order'}")
        if named and len(named) == count:
            return tuple(named)
        return (UNNAMED_ONE,) if count == 1 else UNNAMED_THREE

    def _read_split(self, meta: dict, part_dirs: list, problems: list[str]) -> "Split | None":
        from samocta.data.splits import Split

        raw = meta.get("split")
        path = self.root / DATASET_JSON
        if raw is not None and part_dirs:
            problems.append(f"{path}: a split beside split folders ({', '.join(p.name for _, p in part_dirs)}); give one of them")
            return None
        if raw is not None:
            unknown = sorted(set(raw) - {"train", "val", "test"})
            if unknown:
                problems.append(f"{path}: split keys {unknown}; expected train, val and test")
            parts = {}
            for key in ("train", "val", "test"):
                stems = [str(s) for s in raw.get(key, [])]
                missing = [s for s in stems if s not in self._index]
                if missing:
                    problems.append(f"{path}: split {key} names {len(missing)} stem(s) with no image: {missing[:5]}")
                parts[key] = sorted_ids(s for s in stems if s in self._index)
            both = (set(parts["train"]) & set(parts["val"])) | (set(parts["train"]) & set(parts["test"])) | (
                set(parts["val"]) & set(parts["test"]))
            if both:
                problems.append(f"{path}: stems in two parts of the split: {sorted(both)[:5]}")
            return Split(f"{self.name}-dataset.json", parts["train"], parts["val"], parts["test"])
        if part_dirs:
            parts = {key: sorted_ids(sid for sid, part in self._index.items() if part.name == key) for key in ("train", "val", "test")}
            return Split(f"{self.name}-folders", parts["train"], parts["val"], parts["test"])
        return None

    def _check_sizes(self, problems: list[str]) -> tuple[int, int] | None:
        """Every image the same size (read from the headers): a run needs one."""
        sizes: dict[tuple[int, int], Path] = {}
        for part in self.parts:
            for files in part.images.values():
                for path in files.values():
                    size = image_size(path)
                    if size is not None and size not in sizes:
                        sizes[size] = path
        if len(sizes) > 1:
            (a, pa), (b, pb) = list(sizes.items())[:2]
            problems.append(f"{pb}: {b[1]} x {b[0]} px, but {pa} is {a[1]} x {a[0]} px; the images of one dataset are one "
                            "size: resize them, or keep each size in a dataset of its own (predict reads any size)")
        return next(iter(sizes), None)

    # ----------------------------------------------------------------- reading
    def own_split(self) -> "Split | None":
        """The split this data comes with (split folders or dataset.json), or None."""
        return self._split

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"FolderDataset(root={str(self.root)!r}, name={self.name!r}, ids={len(self.ids)}, tasks={self.tasks}, "
                f"projections={self.projections}, fov_mm={self.fov_mm})")

    def path(self, sample_id: str, name: str) -> Path:
        """The file of a projection or a task of ``sample_id``, or where it should be."""
        part = self._index.get(sample_id, self.parts[0])
        if name in part.images:
            return part.images[name].get(sample_id, self.root / name / f"{sample_id}.png")
        if name in self.projections:  # files holding every projection
            return part.images[""].get(sample_id, self.root / "images" / f"{sample_id}.png")
        key = name if name in part.labels else None if None in part.labels else name
        files = part.labels.get(key, {})
        return files.get(sample_id, self.root / "labels" / str(name) / f"{sample_id}.png")

    def label_key(self, task: str) -> str | None:
        """Which label folder holds ``task`` (None: the single, unnamed one)."""
        return task if task in self.tasks else None if self.unnamed_labels else task

    def read(self, sample_id: str, tasks: tuple[str, ...], check_orientation: bool = True) -> tuple[Sample | None, list[str]]:
        """``load`` that reports instead of raising: the sample (None if anything is wrong) and every problem."""
        part = self._index[sample_id]
        problems: list[str] = []
        projections: dict[str, np.ndarray] = {}
        if "" in part.images:
            path = part.images[""][sample_id]
            try:
                array = read_image(path)
            except DatasetError as exc:
                problems.append(str(exc))
            else:
                count = 1 if array.ndim == 2 else 3
                if count != len(self.projections):
                    problems.append(f"{path}: a {'grey' if count == 1 else 'colour'} image, but this dataset's images hold "
                                    f"{len(self.projections)} projection(s) ({', '.join(self.projections)}); make them alike")
                elif count == 1:
                    projections[self.projections[0]] = array
                else:
                    projections.update({name: np.ascontiguousarray(array[..., i]) for i, name in enumerate(self.projections)})
        else:
            for name in self.used:
                try:
                    array = read_image(part.images[name][sample_id])
                except DatasetError as exc:
                    problems.append(str(exc))
                    continue
                if array.ndim == 3:
                    problems.append(f"{part.images[name][sample_id]}: a colour image in a projection folder; save it grey")
                    continue
                projections[name] = array
        shapes = {a.shape for a in projections.values()}
        if len(shapes) > 1:
            problems.append(f"{sample_id}: projection sizes differ: " + ", ".join(f"{k} {v.shape}" for k, v in projections.items()))
        shape = next(iter(shapes)) if len(shapes) == 1 else None
        labels: dict[str, np.ndarray] = {}
        for task in tasks:
            files = part.labels.get(self.label_key(task), {})
            if sample_id not in files:
                problems.append(f"missing label: {self.path(sample_id, task)} (this dataset's tasks: "
                                f"{', '.join(self.tasks) or 'none named'})")
                continue
            label, found = read_label(files[sample_id], shape)
            problems += found
            if label is not None:
                labels[task] = label
        if check_orientation and not problems:
            problems += label_checks(labels, projections, self.fov_mm, lambda name: self.path(sample_id, name))
        if problems:
            return None, problems
        image = fill_channels(projections, self.channels)
        return Sample(id=sample_id, fov=self.fov, image=image, labels=labels, meta={"dataset": self.name},
                      fov_mm=self.fov_mm), []

    def load(self, sample_id: str, tasks: tuple[str, ...] | list[str] | None = None, check_orientation: bool = True) -> Sample:
        """Read one subject: image uint8 ``(H, W, 3)`` filled as ``channels`` say, labels bool ``(H, W)``.

        Raises:
            DatasetError: listing every problem of this subject, each naming its file.
        """
        if sample_id not in self._index:
            raise DatasetError(f"{sample_id!r} is not a subject of {self.root} (ids are the file stems)")
        return read_or_raise(self.read, sample_id, self.tasks if tasks is None else tasks, TASKS, check_orientation,
                             str(sample_id))

    def validate(self, check_orientation: bool = True, progress: bool = False) -> list[str]:
        """Every problem of the dataset's subjects, one message per problem, each naming its file."""
        from tqdm.auto import tqdm

        problems = []
        tasks = self.tasks or ((None,) if self.unnamed_labels else ())
        for sid in tqdm(self.ids, desc=f"checking {self.name}", disable=not progress, leave=False):
            if tasks == (None,):  # labels of an unnamed task: binary and the image's size, nothing task-specific
                _, found = self.read(sid, (), check_orientation=False)
                files = self._index[sid].labels.get(None, {})
                if not found and sid in files:
                    found = read_label(files[sid], self._size)[1]
            else:
                _, found = self.read(sid, self.tasks, check_orientation)
            problems.extend(found)
        return problems

    def summary(self) -> str:
        """A short human-readable description: layout, ids, projections, labels per task, size, FoV, split."""
        parts = [p.name for p in self.parts if p.name]
        lines = [
            f"{self.name} (folder dataset{', split folders ' + '/'.join(parts) if parts else ''}) at {self.root}",
            f"  ids: {len(self.ids)} ({self.ids[0]} ... {self.ids[-1]})" if self.ids else "  ids: none",
            f"  projections: {', '.join(self.projections)} -> SAM's channels {', '.join(self.channels)}",
        ]
        for task in TASKS:
            n = sum(len(part.labels.get(task, {})) for part in self.parts)
            lines.append(f"  task {task:<10} {f'{n} labels' if task in self.tasks else 'absent'}")
        if self.unnamed_labels:
            n = sum(len(part.labels.get(None, {})) for part in self.parts)
            lines.append(f"  label/: {n} labels of a task not named: name it in {DATASET_JSON} "
                         '({"tasks": ["RV"]}) or give --task')
        if self._size:
            lines.append(f"  image size: {self._size[0]}x{self._size[1]}")
        fov = (f"{self.fov_mm:g} mm wide ({self.fov_mm * 1000 / self._size[1]:.2f} µm per pixel)" if self.fov_mm and self._size
               else "unknown: give --fov-mm (the scans' width in mm) or fov_mm in dataset.json for measurements in mm")
        lines.append(f"  field of view: {fov}")
        split = self.own_split()
        lines.append(f"  split: {split.name}: {len(split.train)} / {len(split.val)} / {len(split.test)}" if split
                     else "  split: none given (train with --split kfold, or add split folders or a split in dataset.json)")
        lines += [f"  note: {n}" for n in self.stray[:5]]
        return "\n".join(lines)
