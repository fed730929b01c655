"""Joint augmentation of an image, its masks and its prompt points with albumentations 2.0.8.

Two named presets, so that every result can say which one it used:

- ``"paper"``: what the SAM-OCTA paper states: horizontal flip, brightness/contrast, slight rotation.
- ``"reference_code"``: what its public code does instead: brightness/contrast, CLAHE, vertical
  and horizontal flip, anisotropic blur, each with p = 0.3, and no rotation.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

PRESETS = ("paper", "reference_code")


def make_augmentation(preset: str = "paper") -> Any:
    """An ``albumentations.Compose`` for a named preset, with keypoints in ``xy`` format.

    Args:
        preset: one of ``PRESETS``.

    Returns:
        the transform; pass it to ``augment_sample``.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI on import otherwise
    import albumentations as A

    if preset == "paper":
        transforms = [
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.Affine(rotate=(-10, 10), border_mode=0, fill=0, fill_mask=0, p=0.5),
        ]
    elif preset == "reference_code":
        transforms = [
            A.RandomBrightnessContrast(p=0.3),
            A.CLAHE(p=0.3),
            A.VerticalFlip(p=0.3),
            A.HorizontalFlip(p=0.3),
            A.AdvancedBlur(p=0.3),
        ]
    else:
        raise ValueError(f"unknown augmentation preset {preset!r}; expected one of {PRESETS}")
    return A.Compose(
        transforms,
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=0,
    )


def augment_sample(
    transform: Any,
    image: np.ndarray,
    masks: dict[str, np.ndarray],
    points: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Apply one seeded draw of ``transform`` to an image, all its masks and optional points.

    Args:
        transform: an ``albumentations.Compose`` built with ``keypoint_params`` (``make_augmentation``).
        image: uint8 ``(H, W, 3)``.
        masks: name -> bool ``(H, W)``; every mask gets the same geometric transform.
        points: float ``(N, 2)`` in ``(x, y)`` with pixel centres at ``i + 0.5``, or None.
        seed: the draw; the same seed gives the same output.

    Returns:
        ``(image, masks, points)`` transformed; masks stay bool, points stay ``(x, y)``
        pixel-centre coordinates (points that leave the image are kept, outside it).
    """
    names = list(masks)
    kwargs: dict[str, Any] = {
        "image": image,
        "masks": [masks[n].astype(np.uint8) for n in names],
        # albumentations puts pixel centres on integers; the project puts them at i + 0.5.
        "keypoints": (np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32).reshape(-1, 2) - 0.5),
    }
    transform.set_random_seed(int(seed))
    out = transform(**kwargs)
    new_masks = {n: np.asarray(m).astype(bool) for n, m in zip(names, out["masks"])}
    new_points = None if points is None else np.asarray(out["keypoints"], np.float32)[:, :2] + 0.5
    return np.ascontiguousarray(out["image"]), new_masks, new_points
