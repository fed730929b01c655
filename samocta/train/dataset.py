"""The torch ``Dataset`` for one segmentation task: image, task mask, prompt, id."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch.utils.data import Dataset

from samocta.core.errors import DatasetError
from samocta.core.vocabulary import TASKS
from samocta.data.augment import augment_sample, make_augmentation
from samocta.data.ids import SampleId, id_seed
from samocta.data.octa500 import Sample
from samocta.data.source import Dataset as DataIndex  # torch's Dataset is the base class here
from samocta.prompts import collate_prompts, fixed_rng, label_tasks

PromptFn = Callable[..., Any]


class SegmentationDataset(Dataset):
    """Samples of one task, optionally augmented, with prompts drawn from the augmented target.

    Each item is a dict:

    - ``"image"``: uint8 ``(H, W, 3)``, channels in the index's layer order;
    - ``"mask"``: bool ``(H, W)``, the task label after augmentation;
    - ``"labels"``: every loaded label after the same augmentation (cross negatives need the other vessel class);
    - ``"prompt"``: ``prompt_fn(mask, rng, labels=labels)`` or None;
    - ``"target"``: the prompt's own target (local mode: one component) when it has one, else ``mask``;
    - ``"id"``: the subject id.

    Randomness for item ``i`` comes from ``numpy.random.default_rng([seed, epoch, id_seed(id)])`` so that any
    epoch can be replayed exactly (``set_epoch``); with ``fixed_prompts=True`` the epoch is left out,
    which gives each subject the same prompt every time (validation and test).

    Args:
        index: a dataset index (``samocta.data.open_dataset``: an OCTA-500 tree or a folder dataset).
        ids: the subject ids to serve, in order.
        task: one of ``TASKS``.
        prompt_fn: called as ``prompt_fn(mask, rng, labels=labels)``; see ``samocta.prompts``.
        augment: False, True (the ``"paper"`` preset), a preset name, or an ``albumentations.Compose``
            built with keypoint support.
        seed: base seed.
        fixed_prompts: draw the same prompt for a subject in every epoch.
        cache: keep decoded samples in memory (a 3M subject takes about 0.7 MB).
        samples: subjects already read (e.g. by a run's check of its subjects), used instead of
            reading them again.
    """

    def __init__(
        self,
        index: DataIndex,
        ids: Sequence[SampleId],
        task: str,
        prompt_fn: PromptFn | None = None,
        augment: bool | str | Any = False,
        seed: int = 0,
        fixed_prompts: bool = False,
        cache: bool = True,
        samples: Mapping[SampleId, Sample] | None = None,
    ) -> None:
        if task not in TASKS:
            raise DatasetError(f"unknown task {task!r}; expected one of {TASKS}")
        if task not in index.tasks:
            raise DatasetError(
                f"task {task} has no labels in {index.where} (looked for its folder); present: {index.tasks}"
            )
        known = set(index.ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise DatasetError(f"{len(missing)} id(s) not in {index.name} at {index.where}: {missing[:10]}")
        self.index, self.ids, self.task = index, list(ids), task
        self.prompt_fn, self.seed, self.fixed_prompts = prompt_fn, int(seed), fixed_prompts
        if augment is True:
            augment = "paper"
        self.transform = make_augmentation(augment) if isinstance(augment, str) else (augment or None)
        self.epoch = 0
        self._cache: dict[SampleId, Sample] | None = dict(samples or {}) if cache else None

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation and prompts the next items use."""
        self.epoch = int(epoch)

    def sample(self, sample_id: SampleId) -> Sample:
        """The un-augmented sample (cached)."""
        if self._cache is not None and sample_id in self._cache:
            return self._cache[sample_id]
        sample = self.index.load(sample_id, tasks=label_tasks(self.task, self.index.tasks))
        if self._cache is not None:
            self._cache[sample_id] = sample
        return sample

    def rng(self, sample_id: SampleId) -> np.random.Generator:
        """The generator for one item in the current epoch (or fixed, see ``fixed_prompts``)."""
        if self.fixed_prompts:
            return fixed_rng(self.seed, sample_id)
        return np.random.default_rng([self.seed, self.epoch, id_seed(sample_id)])

    def __getitem__(self, i: int) -> dict[str, Any]:
        sid = self.ids[i]
        sample = self.sample(sid)
        rng = self.rng(sid)
        image, labels = sample.image, sample.labels
        if self.transform is not None:
            aug_seed = int(np.random.default_rng([self.seed, self.epoch, id_seed(sid), 1]).integers(2**31 - 1))
            image, labels, _ = augment_sample(self.transform, image, labels, None, seed=aug_seed)
        mask = labels[self.task]
        prompt = self.prompt_fn(mask, rng, labels=labels) if self.prompt_fn is not None else None
        target = getattr(prompt, "target", None)
        return {
            "image": image,
            "mask": mask,
            "labels": labels,
            "prompt": prompt,
            "target": mask if target is None else target,
            "id": sid,
        }


def collate_batch(items: list[dict[str, Any]], pad_to: int | None = None) -> dict[str, Any]:
    """Stack dataset items into a batch; prompts of different lengths are padded with label -1.

    Returns:
        dict with ``image`` uint8 ``(B, H, W, 3)``, ``mask`` and ``target`` bool ``(B, H, W)``,
        ``coords`` float32 ``(B, N, 2)``, ``point_labels`` int64 ``(B, N)`` and ``id`` (list).
    """
    shapes = {it["image"].shape for it in items}
    if len(shapes) > 1:
        raise DatasetError(f"cannot batch images of different sizes {sorted(shapes)}; batch one FoV at a time")
    prompts = [it["prompt"] for it in items]
    if any(p is None for p in prompts):
        coords, labels = np.zeros((len(items), 0, 2), np.float32), np.zeros((len(items), 0), np.int64)
    else:
        coords, labels = collate_prompts(prompts, pad_to)
    return {
        "image": np.stack([it["image"] for it in items]),
        "mask": np.stack([it["mask"] for it in items]),
        "target": np.stack([it["target"] for it in items]),
        "coords": coords,
        "point_labels": labels,
        "id": [it["id"] for it in items],
    }
