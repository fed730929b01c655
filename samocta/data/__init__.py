"""OCTA-500 data: the index for both on-disk layouts, loading, validation, splits, the Dataset, augmentation."""

from __future__ import annotations

from typing import Any

from samocta.data.imageio import read_grey, write_grey
from samocta.data.octa500 import (
    FOV_ID_RANGE,
    FOV_MM,
    FOV_SIZE,
    FOVS,
    LAYERS,
    LAYOUTS,
    TASK_FOLDERS,
    TASKS,
    VESSEL_TASKS,
    OCTA500,
    Sample,
    fov_of,
    orientation_scores,
    pixel_size_um,
)
from samocta.data.splits import Split, kfold_split, standard_split
from samocta.errors import DatasetError

__all__ = [
    "FOVS", "FOV_ID_RANGE", "FOV_MM", "FOV_SIZE", "LAYERS", "LAYOUTS", "TASKS", "TASK_FOLDERS", "VESSEL_TASKS",
    "OCTA500", "Sample", "DatasetError", "Split", "SegmentationDataset", "collate_batch",
    "standard_split", "kfold_split", "fov_of", "orientation_scores", "pixel_size_um",
    "read_grey", "write_grey", "make_augmentation", "augment_sample",
]


def __getattr__(name: str) -> Any:
    # torch and albumentations take seconds to import; only the Dataset and augmentation need them.
    if name in ("SegmentationDataset", "collate_batch"):
        from samocta.data import dataset

        return getattr(dataset, name)
    if name in ("make_augmentation", "augment_sample"):
        from samocta.data import augment

        return getattr(augment, name)
    raise AttributeError(f"module 'samocta.data' has no attribute {name!r}")
