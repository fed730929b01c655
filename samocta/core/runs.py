"""The files of a run folder, named in one place for training, evaluation and whatever reads runs.

A run folder (``TrainConfig.out``) holds one fold folder per trained fold (``fold<k>`` for k-fold,
``standard`` for the standard split); each fold folder holds::

    config.json              the TrainConfig (and the effective prompt recipe)
    split.json               the subject ids of train / val / test
    metrics.csv              one row per finished epoch
    adapter_best.safetensors the adapter with the best validation Dice so far
    adapter_last.safetensors the adapter after the last finished epoch
    last.pt                  everything needed to resume: adapter, optimiser, scheduler, RNG, history
    results-<part>.csv       per-subject scores of an evaluation (part: val or test)
    summary-<part>.csv       their summary
    evaluation-<part>.json   what was evaluated: subjects, modes, adapter
    masks-<part>/<mode>/     predicted masks, when asked for
    results-<part>-on-<data>.csv (and summary-, evaluation-, masks-): the same for another dataset
                             (``evaluate --data``; <data> is ``samocta.data.dataset_slug``)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Literal

CONFIG = "config.json"
SPLIT = "split.json"
HISTORY = "metrics.csv"
CHECKPOINT = "last.pt"
Which = Literal["best", "last"]


def fold_name(split: str, fold: int) -> str:
    """The fold folder's name: ``fold<k>`` for k-fold, ``standard`` for the standard split."""
    return f"fold{fold}" if split == "kfold" else "standard"


def adapter(fold_dir: str | os.PathLike, which: Which = "best") -> Path:
    """The adapter file of a fold: ``best`` (best validation Dice) or ``last`` (last finished epoch)."""
    if which not in ("best", "last"):
        raise ValueError(f"an adapter is 'best' or 'last', got {which!r}")
    return Path(fold_dir) / f"adapter_{which}.safetensors"


def _scored(part: str, on: str | None) -> str:
    return part if on is None else f"{part}-on-{on}"


def results(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    """Per-subject scores of the run's ``part``, or of another dataset's (``on``: its slug)."""
    return Path(fold_dir) / f"results-{_scored(part, on)}.csv"


def summary(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    return Path(fold_dir) / f"summary-{_scored(part, on)}.csv"


def clicks(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    """Per-subject, per-click Dice of the simulated corrective clicks (``samocta.evaluate.clicks``)."""
    return Path(fold_dir) / f"clicks-{_scored(part, on)}.csv"


def click_summary(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    return Path(fold_dir) / f"clicks-summary-{_scored(part, on)}.csv"


def evaluation(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    return Path(fold_dir) / f"evaluation-{_scored(part, on)}.json"


def masks(fold_dir: str | os.PathLike, part: str, on: str | None = None) -> Path:
    return Path(fold_dir) / f"masks-{_scored(part, on)}"


def cross_results(fold_dir: str | os.PathLike) -> list[Path]:
    """The results files of the fold scored on other datasets (``results-<part>-on-<data>.csv``)."""
    return sorted(Path(fold_dir).glob("results-*-on-*.csv"))


def is_fold(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a fold folder (it holds a config)."""
    return (Path(path) / CONFIG).is_file()


def fold_dirs(path: str | os.PathLike) -> list[Path]:
    """The fold folders of a run folder, or ``[path]`` if it is one fold folder itself."""
    path = Path(path)
    return [path] if is_fold(path) else sorted(p.parent for p in path.glob(f"*/{CONFIG}"))


HISTORY_FIELDS = ("epoch", "train_loss", "val_dice", "val_jaccard", "val_cldice", "val_dice_none", "lr", "seconds")


def write_history(fold_dir: str | os.PathLike, rows: list[dict[str, float]]) -> None:
    """A fold's per-epoch rows as ``metrics.csv`` (atomically); a column a row lacks (a run resumed
    from an earlier version) is written as NaN."""
    from samocta.core.files import atomic_write_text

    lines = [",".join(HISTORY_FIELDS)] + [",".join(str(r.get(k, float("nan"))) for k in HISTORY_FIELDS) for r in rows]
    atomic_write_text(Path(fold_dir) / HISTORY, "\n".join(lines) + "\n")


def read_history(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The per-epoch rows of a fold's metrics.csv.

    Raises:
        UnreadableFileError: not the table ``write_history`` writes (torn, binary, edited).
    """
    import io

    from samocta.core.files import UnreadableFileError, read_bytes

    path = Path(run_dir) / HISTORY
    fix = "delete it (a --resume writes it again from the run's last.pt), or start afresh in another --out"
    try:
        reader = csv.DictReader(io.StringIO(read_bytes(path, "training history", fix, 16 << 20).decode("utf-8")))
        rows = list(reader)
        if "epoch" not in (reader.fieldnames or ()) or any(None in row or None in row.values() for row in rows):
            raise ValueError("no epoch column, or rows of another length than the header")
        history = [{k: float(v) for k, v in row.items()} for row in rows]
    except (UnicodeDecodeError, ValueError, TypeError, csv.Error) as exc:
        raise UnreadableFileError(f"{path}: not a training history ({str(exc)[:100]}); {fix}") from None
    return history
