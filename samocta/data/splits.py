"""Train/validation/test splits: the IPN-V2 standard split and seeded k-fold cross-validation.

Every split has a name and can be written to and read from JSON, so that every result can say
exactly which subject ids it was trained and scored on.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from samocta.core.errors import DatasetError
from samocta.core.files import atomic_write_text, read_json
from samocta.data.ids import SampleId, sorted_ids

# IPN-V2 ranges, used by most OCTA-500 papers since (octa500.md section 9).
_STANDARD = {
    "3M": ((10301, 10440), (10441, 10450), (10451, 10500)),
    "6M": ((10001, 10180), (10181, 10200), (10201, 10300)),
}


@dataclass
class Split:
    """Subject ids for training, validation (model selection) and test (reporting).

    Attributes:
        name: e.g. "standard-3M", "kfold10-seed0-fold3" or "ROSSA-folders".
        train, val, test: sorted subject ids (OCTA-500 numbers, or a folder dataset's stems); disjoint.
    """

    name: str
    train: list[SampleId]
    val: list[SampleId]
    test: list[SampleId] = field(default_factory=list)

    def restrict(self, available: Iterable[SampleId]) -> "Split":
        """The same split keeping only ids in ``available`` (for a tree holding a subset of subjects)."""
        keep = set(available)
        return Split(self.name, *[[i for i in part if i in keep] for part in (self.train, self.val, self.test)])

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the split (name and id lists) as JSON."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Split":
        """Read a split written by ``to_json``."""
        if not Path(path).exists():
            raise DatasetError(f"missing split file: {path}")
        try:
            raw = read_json(path, "split file", "restore it, or start afresh in another --out", max_bytes=16 << 20)
            # OCTA-500's ids are numbers, a folder dataset's are its file stems: each kept as written
            return cls(name=str(raw["name"]), **{k: [_id(i) for i in raw[k]] for k in ("train", "val", "test")})
        except FileNotFoundError as exc:
            raise DatasetError(f"missing split file: {path}") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{path}: not a split file (expected keys name, train, val, test): {exc}") from exc


def _id(value: object) -> SampleId:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a subject id is a number or a file stem, got {value!r}")
    return value


def standard_split(fov: str, available: Iterable[int] | None = None) -> Split:
    """The IPN-V2 split: 3M 10301-10440 / 10441-10450 / 10451-10500, 6M 10001-10180 / 10181-10200 / 10201-10300.

    Args:
        fov: "3M" or "6M".
        available: if given, keep only these ids (e.g. ``OCTA500(...).ids``).
    """
    if fov not in _STANDARD:  # its keys are OCTA-500's fields of view (this module sits below the loader)
        raise DatasetError(f"unknown field of view {fov!r}; expected one of {tuple(_STANDARD)}")
    parts = [list(range(lo, hi + 1)) for lo, hi in _STANDARD[fov]]
    split = Split(f"standard-{fov}", *parts)
    return split if available is None else split.restrict(available)


def kfold_split(ids: Iterable[SampleId], k: int = 10, seed: int = 0) -> list[Split]:
    """Seeded k-fold cross-validation, as in the SAM-OCTA paper (no held-out test set).

    The ids, in natural order, are shuffled with ``numpy.random.default_rng(seed)`` and cut into
    ``k`` folds whose sizes differ by at most one. Fold ``i`` validates on its own ids and trains on
    all the others.

    Args:
        ids: subject ids (duplicates are removed).
        k: number of folds, 2 <= k <= number of ids.
        seed: shuffle seed; the same ids and seed always give the same folds.

    Returns:
        ``k`` splits; their ``val`` parts are disjoint and together cover every id.
    """
    ids = sorted_ids(ids)
    if not 2 <= k <= len(ids):
        raise DatasetError(f"k-fold needs 2 <= k <= number of ids; got k={k} for {len(ids)} ids")
    order = np.random.default_rng(seed).permutation(len(ids))
    folds = [sorted_ids(ids[j] for j in part) for part in np.array_split(order, k)]
    return [
        Split(f"kfold{k}-seed{seed}-fold{i}", sorted_ids(set(ids) - set(fold)), fold, [])
        for i, fold in enumerate(folds)
    ]
