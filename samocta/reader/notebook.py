"""What every chapter does before its content, in one call: ``chapter = setup(MODE, DATA, ...)``.

The chapters' parameter cells read environment variables (``SAMOCTA_MODE``, ``SAMOCTA_DATA``, ...);
``setup`` turns them into the data root (synthetic OCTA in ``smoke`` mode when no data is given;
never silently in ``full`` mode), the work folder the chapters share (on Google Drive when the
notebook runs on Colab, so that the chapters, each in its own runtime, read each other's runs), the
device, and the fine-tuning configurations the chapters train, so that a run one chapter made is
the run the next chapter reads. It says what it found: torch, the GPU and the precision a run
will use, the data and its check, and the checkpoint with its SHA-256.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from samocta.core import runs
from samocta.core.errors import SamOctaError

if TYPE_CHECKING:
    from samocta.config import TrainConfig

MODES = ("smoke", "full")
SPLITS = ("standard", "kfold")
COLAB_DRIVE = Path("/content/drive")  # where Colab mounts Google Drive
COLAB_ROOT = Path("/content")  # a Colab runtime's own disk: gone when the runtime is recycled


class SetupError(SamOctaError, ValueError):
    """A chapter's parameters do not describe a run that can be made."""


@dataclass
class Chapter:
    """A chapter's resolved parameters.

    Attributes:
        mode: "smoke" (CPU, synthetic OCTA, tiny SAM) or "full" (GPU, OCTA-500, an official SAM).
        data_root: the dataset root the chapter reads.
        work: the folder the chapters share (synthetic data, runs).
        model: the SAM type; checkpoint: its weights (None: the shipped tiny SAM; "download" in
            full mode unless given).
        fov, seed, epochs: as the parameters say (fov: None when the data is a folder dataset,
            whose field of view is its own: ``fov_mm``).
        subjects: training subjects a run uses (0: all of its split's).
        split, fold: "standard" or "kfold", and the fold of a k-fold split (10 folds).
        batch: images per optimiser step (0: 4 in smoke mode, 1 in full mode).
        device: where every model of the chapter runs.
        fov_mm: a folder dataset's scan width in mm (None: its dataset.json's, or unknown).
        channels: what fills SAM's three channels ("auto": what the data has).
    """

    mode: str
    data_root: Path
    work: Path
    model: str
    checkpoint: str | None
    fov: str
    seed: int
    epochs: int
    subjects: int = 0
    split: str = "standard"
    fold: int = 0
    batch: int = 0
    device: torch.device = torch.device("cpu")
    fov_mm: float | None = None
    channels: str = "auto"

    def dataset(self, channels: str | None = None):
        """The chapter's data: an OCTA-500 tree (its FoV ``fov``) or a folder dataset (``samocta.data.open_dataset``)."""
        from samocta.data import open_dataset

        return open_dataset(self.data_root, self.fov, channels or self.channels, self.fov_mm)

    @property
    def batch_size(self) -> int:
        """The ``batch`` parameter, or 4 synthetic images on a CPU and 1 at 1024 px on a GPU (as the paper's runs)."""
        return self.batch or (4 if self.mode == "smoke" else 1)

    @property
    def progress(self) -> bool | str:
        """What long cells show: progress bars and per-epoch lines in full mode; in smoke mode (the
        rendered book) the per-epoch lines only."""
        return True if self.mode == "full" else "lines"

    def run_dir(self, name: str) -> Path:
        return self.work / "runs" / name

    def build_sam(self) -> torch.nn.Module:
        """The chapter's plain SAM, with its checkpoint's weights, on the chapter's device."""
        from samocta.model.build import build_sam, resolve_checkpoint

        weights, _ = resolve_checkpoint(self.model, self.checkpoint)
        return build_sam(self.model, weights, pretrained=weights is not None).to(self.device)

    def train_config(self, name: str, **fields: Any) -> "TrainConfig":
        """The fine-tuning configuration of the run ``name``, from the chapter's parameters and ``fields``.

        If a chapter already made that run, the configuration must be the run's own; only
        ``epochs`` may grow (the run is then extended from its last checkpoint).

        Raises:
            SetupError: the run exists with other options; the message names them, the run folder
                and how to start afresh.
        """
        from samocta.config import TrainConfig, config_differences, open_data
        from samocta.core.runs import read_history

        base = dict(data=str(self.data_root), fov=self.fov, fov_mm=self.fov_mm, channels=self.channels, model=self.model,
                    checkpoint=self.checkpoint, epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                    out=str(self.run_dir(name)), split=self.split, fold=self.fold, max_train=self.subjects or None)
        config = TrainConfig(**{**base, **fields})
        fold_dir = config.fold_dir()
        if (fold_dir / runs.CONFIG).exists():
            done = len(read_history(fold_dir)) if (fold_dir / runs.HISTORY).exists() else 0
            # compared as the run records it: with what the data decides (the FoV, the channels "auto" means)
            differ = config_differences(TrainConfig.from_json(fold_dir / runs.CONFIG), open_data(config)[0], done)
            if differ:
                raise SetupError(
                    f"{fold_dir} holds a run made with other options: {'; '.join(differ)}. Set the parameters back "
                    f"to the run's values to use or extend it (only EPOCHS may grow), or start afresh: delete that "
                    f"folder, or set WORKDIR (SAMOCTA_WORKDIR) to another folder"
                )
        return config


def _on_colab() -> bool:
    return "google.colab" in sys.modules


def _colab_workdir(workdir: Path, drive: bool) -> Path:
    """On Colab, a relative work folder goes to Google Drive (mounted here if need be, which asks the
    reader for permission), so that every chapter, each in its own runtime, finds the same runs; if
    Drive is declined or off, to the runtime's disk, with a warning that it does not last."""
    if workdir.is_absolute():
        return workdir
    if drive:
        try:
            if not (COLAB_DRIVE / "MyDrive").is_dir():
                from google.colab import drive as colab_drive

                colab_drive.mount(str(COLAB_DRIVE))
            return COLAB_DRIVE / "MyDrive" / workdir
        except Exception as exc:  # declined, or no Drive in this runtime: keep going on the runtime's disk
            print(f"warning: Google Drive not mounted ({type(exc).__name__}: {exc})")
    print(f"warning: the work folder is on this Colab runtime's own disk ({COLAB_ROOT / workdir}); runs are lost "
          "when the runtime is recycled, and other chapters (other runtimes) do not see them")
    return COLAB_ROOT / workdir


def runtime_lines(device: torch.device, mode: str) -> list[str]:
    """What a run on ``device`` uses: torch, CUDA, the GPU, its memory and the training precision."""
    from samocta.model.speed import autocast_dtype

    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    lines = [f"torch {torch.__version__} ({cuda}), Python {sys.version.split()[0]}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        dtype = autocast_dtype(device)
        scaled = " with loss scaling" if dtype == torch.float16 else ""
        lines.append(f"device {device}: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability "
                     f"{props.major}.{props.minor}; training precision: {str(dtype).removeprefix('torch.')} autocast{scaled}")
    else:
        lines.append(f"device cpu ({os.cpu_count()} cores); training precision: float32")
        if mode == "full":
            lines.append("warning: full mode without a GPU. Fine-tuning an official SAM on a CPU takes days; on Colab "
                         "choose Runtime > Change runtime type > GPU, then run the notebook again")
    return lines


def checkpoint_line(model: str, checkpoint: str | None) -> str:
    """The weights a run will start from: file, SHA-256 and whether they are the official ones.

    An official checkpoint not yet in the cache is not fetched here (chapters that build no model
    need none); the line says where and how large the download will be.
    """
    from samocta.model.build import resolve_checkpoint
    from samocta.model.checkpoints import OFFICIAL
    from samocta.model.download import cache_dir

    if checkpoint == "random":
        return f"checkpoint: none, random {model} weights on purpose (nothing pretrained to fine-tune)"
    if checkpoint == "download" and model in OFFICIAL:
        name, size, sha = OFFICIAL[model]
        cached = cache_dir() / name
        if cached.is_file():
            return f"checkpoint: {cached} (the official {model} file, SHA-256 {sha})"
        mb = f"{size / 1e6:,.0f} MB, " if size else ""
        return f"checkpoint: the official {name} ({mb}SHA-256 {sha[:12]}...), downloaded into {cache_dir()} on first use"
    path, sha = resolve_checkpoint(model, checkpoint)
    official = {entry[2]: entry[0] for entry in OFFICIAL.values()}
    kind = (f"the official {official[sha]}" if sha in official else
            "the shipped tiny SAM, pretrained by the project on generic shapes" if model == "tiny" and not checkpoint else
            "not an official SAM checkpoint")
    return f"checkpoint: {path} ({kind}, SHA-256 {sha})"


def data_lines(chapter: "Chapter", check: bool) -> list[str]:
    """The dataset summary and, if ``check``, the result of reading every subject (``check-data``)."""
    index = chapter.dataset()
    lines = index.summary().splitlines()
    if check:
        problems = index.validate()
        if problems:
            command = f"python -m samocta check-data {chapter.data_root}" + (f" --fov {chapter.fov}" if chapter.fov else "")
            lines.append(f"  data check: {len(problems)} problem(s); '{command}' lists them:")
            lines += [f"    - {p}" for p in problems[:5]]
        else:
            lines.append(f"  data check: all {len(index.ids)} subjects read, no problems found")
    return lines


def setup(mode: str, data: str, workdir: str, model: str, checkpoint: str, fov: str = "3M", seed: int = 0,
          epochs: int = 10, subjects: int = 0, split: str = "standard", fold: int = 0, batch: int = 0,
          n_synthetic: int = 40, drive: bool = True, verbose: bool = True, fov_mm: float | None = None,
          channels: str = "auto") -> Chapter:
    """Resolve a chapter's parameters, write synthetic data if needed, and say what the chapter uses.

    Args:
        mode: "smoke" or "full".
        data: an OCTA-500 root (either layout) or a folder dataset of your own; empty: synthetic
            data (smoke mode only).
        workdir: the folder the chapters share (relative: on Colab, on Google Drive).
        model, checkpoint: the SAM type and its weights (empty: the shipped tiny SAM in smoke mode,
            "download" in full mode).
        fov, seed, epochs: the chapters' parameters.
        subjects: training subjects per run (0: all); split, fold: "standard" or "kfold" and its fold;
        batch: images per step (0: the mode's default).
        n_synthetic: subjects of the synthetic tree.
        drive: on Colab, keep a relative work folder on Google Drive.
        fov_mm: a folder dataset's scan width in mm, if its dataset.json does not say it.
        channels: what fills SAM's three channels ("auto", one projection, or three names).

    Raises:
        SetupError: an unknown mode or split, a fold out of range, a negative count, or full mode
            without data.
    """
    from samocta.core.vocabulary import check_fov_mm, parse_channels
    from samocta.data.octa500 import octa500_fovs
    from samocta.model.build import resolve_device
    from samocta.synth import ensure_synthetic

    if mode not in MODES:
        raise SetupError(f"MODE (SAMOCTA_MODE) must be one of {MODES}, got {mode!r}")
    if split not in SPLITS:
        raise SetupError(f"SPLIT (SAMOCTA_SPLIT) must be one of {SPLITS}, got {split!r}")
    if not 0 <= fold < 10:
        raise SetupError(f"FOLD (SAMOCTA_FOLD) must be 0-9 (the paper's 10 folds), got {fold}")
    for name, value in (("SUBJECTS", subjects), ("BATCH", batch), ("EPOCHS", epochs)):
        if value < (1 if name == "EPOCHS" else 0):
            raise SetupError(f"{name} (SAMOCTA_{name}) must be {'at least 1' if name == 'EPOCHS' else '0 (the default) or more'}, got {value}")
    if fov_mm is not None:
        try:
            check_fov_mm(fov_mm, "FOV_MM (SAMOCTA_FOV_MM; 0: not given)")
        except SamOctaError as exc:
            raise SetupError(str(exc)) from None
    try:
        parse_channels(channels)
    except SamOctaError as exc:
        raise SetupError(f"CHANNELS (SAMOCTA_CHANNELS): {exc}") from None
    if not data and mode == "full":
        raise SetupError(
            "full mode needs the real data: set DATA (SAMOCTA_DATA) to your OCTA-500 folder (either layout), or run in "
            "smoke mode (MODE = \"smoke\") for synthetic data"
        )
    work = Path(workdir).expanduser()
    if _on_colab():
        work = _colab_workdir(work, drive)
    if data:
        data_root = Path(data).expanduser()
    else:  # synthetic OCTA in the official OCTA-500 layout: the loader cannot tell it from the real tree
        data_root = ensure_synthetic(work / "synthetic-octa500", fov, n=n_synthetic, seed=seed)
    device = resolve_device("auto")
    folder = bool(data) and not octa500_fovs(data_root)  # a folder dataset of one's own: its FoV is its own
    chapter = Chapter(mode, data_root, work, model, checkpoint or ("download" if mode == "full" else None),
                      None if folder else fov, seed, epochs, subjects, split, fold, batch, device, fov_mm, channels)
    if verbose:
        source = ("a folder dataset" if folder else "OCTA-500") if data else "synthetic OCTA"
        print(f"mode {mode}: {source}, model {model}, work folder {work}")
        for line in runtime_lines(device, mode):
            print(line)
        print(checkpoint_line(model, chapter.checkpoint))
        if folder and fov != "3M":
            print(f"note: FOV {fov} is for OCTA-500 trees; this folder dataset's width is FOV_MM or its dataset.json's")
        for line in data_lines(chapter, check=bool(data)):
            print(line)
    return chapter
