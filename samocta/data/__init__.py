"""OCTA data: OCTA-500 trees (both on-disk layouts) and folder datasets of your own; loading, validation,
splits, the channels SAM's input takes, augmentation. (The training dataset lives in ``samocta.train``.)"""

from __future__ import annotations

from typing import Any

from samocta.core.errors import DatasetError
from samocta.core.vocabulary import FOVS, TASKS, parse_channels
from samocta.data.channels import channels_label, channels_text
from samocta.data.folder import FolderDataset
from samocta.data.ids import SampleId, id_seed, sorted_ids
from samocta.data.imageio import read_grey, read_image, write_grey
from samocta.data.octa500 import (
    FOV_ID_RANGE,
    FOV_MM,
    FOV_SIZE,
    LAYERS,
    LAYOUTS,
    OCTA500,
    TASK_FOLDERS,
    Sample,
    fov_label,
    fov_of,
    pixel_size_um,
)
from samocta.data.reading import VESSEL_TASKS, orientation_scores
from samocta.data.source import Dataset, dataset_slug, open_dataset, same_dataset
from samocta.data.splits import Split, kfold_split, standard_split

__all__ = [
    "FOVS", "FOV_ID_RANGE", "FOV_MM", "FOV_SIZE", "LAYERS", "LAYOUTS", "TASKS", "TASK_FOLDERS", "VESSEL_TASKS",
    "OCTA500", "FolderDataset", "Dataset", "open_dataset", "dataset_slug", "same_dataset", "Sample", "SampleId",
    "DatasetError", "Split", "standard_split", "kfold_split", "fov_of", "fov_label", "orientation_scores",
    "pixel_size_um", "read_grey", "read_image", "write_grey", "id_seed", "sorted_ids", "channels_label",
    "channels_text", "parse_channels", "make_augmentation", "augment_sample",
]


def __getattr__(name: str) -> Any:
    # albumentations takes seconds to import; only augmentation needs it.
    if name in ("make_augmentation", "augment_sample"):
        from samocta.data import augment

        return getattr(augment, name)
    raise AttributeError(f"module 'samocta.data' has no attribute {name!r}")
