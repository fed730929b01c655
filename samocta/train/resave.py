"""``python -m samocta resave-adapter RUN``: a run's adapters written again, with their digest, from the run itself.

An adapter without a digest (written before adapters carried one, or by another tool) is refused, since
nothing shows its metadata is what its training wrote. Its run folder still says what it is: the run's
``config.json`` gives the model and its LoRA settings, the run's data the training images' size, width
and labels, and its validation subjects what the adapter's own masks measure. This takes only the
weights from the old file, checks them against the model the run describes, records the rest from the
run as training does, and writes the file again, atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from samocta.config import TrainingError, open_data, saved_config
from samocta.core import runs
from samocta.core.files import folder_lock
from samocta.data import Split
from samocta.data.source import check_subjects
from samocta.model.lora import LoRASam, build_model
from samocta.prompts import label_tasks
from samocta.train.record import data_record, measure_own_masks


def resave_adapters(run: str | os.PathLike) -> list[Path]:
    """Every adapter of every fold of ``run`` written again from the run, with its digest.

    Returns:
        the files written (``adapter_best`` and ``adapter_last`` of each fold that has them).

    Raises:
        TrainingError: no trained fold under ``run``; DatasetError: the run's data is not where its
            config says (the record of the training images comes from it); AdapterError: weights that
            do not fit the model the run describes.
    """
    folds = runs.fold_dirs(run)
    if not folds:
        raise TrainingError(f"{run}: no trained fold in this folder (expected config.json in it or in a folder below)")
    written = []
    for fold in folds:
        config, index = open_data(saved_config(fold))
        split = Split.from_json(fold / runs.SPLIT)
        train_ids = split.train[: config.max_train] if config.max_train else split.train
        samples = check_subjects(index, train_ids + split.val, config.task, label_tasks(config.task, index.tasks))
        model = build_model(config, "cpu")
        model.trained_with.update(data_record(index, samples, train_ids, config.task))
        val_samples = {sid: samples[sid] for sid in split.val}
        with folder_lock(fold, "a re-save of its adapters"):  # not while a training writes them
            for which in ("best", "last"):
                path = runs.adapter(fold, which)
                if not path.exists():
                    continue
                tensors, _ = LoRASam.read_adapter(path, require_digest=False)  # the weights only: the run says the rest
                model.set_adapter_tensors(tensors, path)
                model.trained_with.update(measure_own_masks(model, index, val_samples, config))
                model.save_adapter(path)
                written.append(path)
    return written
