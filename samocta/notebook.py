"""What every chapter does before its content, in one call: ``chapter = setup(MODE, DATA, ...)``.

The chapters' parameter cells read environment variables (``SAMOCTA_MODE``, ``SAMOCTA_DATA``, ...);
``setup`` turns them into the data root (synthetic OCTA in ``smoke`` mode when no data is given;
never silently in ``full`` mode), the work folder the chapters share, the device, and the
fine-tuning configurations the chapters train, so that a run one chapter made is the run the
next chapter reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samocta import runs
from samocta.errors import SamOctaError

if TYPE_CHECKING:
    from samocta.train import TrainConfig

MODES = ("smoke", "full")


class SetupError(SamOctaError, ValueError):
    """A chapter's parameters do not describe a run that can be made."""


@dataclass
class Chapter:
    """A chapter's resolved parameters.

    Attributes:
        mode: "smoke" (CPU, synthetic OCTA, tiny SAM) or "full" (GPU, OCTA-500, an official SAM).
        data_root: the dataset root the chapter reads.
        work: the folder the chapters share (synthetic data, runs).
        model: the SAM type; checkpoint: its weights ("download" in full mode unless given).
        fov, seed, epochs: as the parameters say.
    """

    mode: str
    data_root: Path
    work: Path
    model: str
    checkpoint: str | None
    fov: str
    seed: int
    epochs: int

    @property
    def batch_size(self) -> int:
        """4 synthetic images on a CPU; 1 at 1024 px on a GPU, as the paper's runs."""
        return 4 if self.mode == "smoke" else 1

    def run_dir(self, name: str) -> Path:
        return self.work / "runs" / name

    def train_config(self, name: str, **fields: Any) -> "TrainConfig":
        """The fine-tuning configuration of the run ``name``: the one saved with it if a chapter
        already made it (so later chapters read exactly that run; only ``epochs`` follows the
        parameter, so that raising it extends the run), else a new one from the chapter's
        parameters and ``fields``."""
        from dataclasses import replace

        from samocta.train import TrainConfig

        folds = runs.fold_dirs(self.run_dir(name))
        if folds:
            return replace(TrainConfig.from_json(folds[0] / runs.CONFIG), epochs=self.epochs)
        base = dict(data=str(self.data_root), fov=self.fov, model=self.model, checkpoint=self.checkpoint,
                    epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, out=str(self.run_dir(name)))
        return TrainConfig(**{**base, **fields})


def setup(mode: str, data: str, workdir: str, model: str, checkpoint: str, fov: str = "3M", seed: int = 0,
          epochs: int = 10, n_synthetic: int = 40, verbose: bool = True) -> Chapter:
    """Resolve a chapter's parameters, write synthetic data if needed, and say what the chapter uses.

    Args:
        mode: "smoke" or "full".
        data: an OCTA-500 root (either layout); empty: synthetic data (smoke mode only).
        workdir: the folder the chapters share.
        model, checkpoint: the SAM type and its weights (empty: the shipped tiny SAM in smoke mode,
            "download" in full mode).
        fov, seed, epochs: the chapters' parameters.
        n_synthetic: subjects of the synthetic tree.

    Raises:
        SetupError: an unknown mode, or full mode without data.
    """
    from samocta.synth import ensure_synthetic

    if mode not in MODES:
        raise SetupError(f"SAMOCTA_MODE must be one of {MODES}, got {mode!r}")
    work = Path(workdir).expanduser()
    if data:
        data_root = Path(data).expanduser()
    elif mode == "full":
        raise SetupError(
            "full mode needs the real data: set SAMOCTA_DATA to your OCTA-500 folder (either layout), or run in "
            "smoke mode (SAMOCTA_MODE=smoke) for synthetic data"
        )
    else:  # synthetic OCTA in the official OCTA-500 layout: the loader cannot tell it from the real tree
        data_root = ensure_synthetic(work / "synthetic-octa500", fov, n=n_synthetic, seed=seed)
    chapter = Chapter(mode, data_root, work, model, checkpoint or ("download" if mode == "full" else None), fov, seed, epochs)
    if verbose:
        source = "synthetic OCTA" if not data else "OCTA-500"
        print(f"mode {mode}: {source} at {data_root}; model {model}; work folder {work}")
    return chapter
