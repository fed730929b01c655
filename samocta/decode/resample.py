"""Showing a scan to a model at the pixel size the model was trained at, and its logits back at the scan's own size.

SAM resizes every image so that its longest side fills the encoder's input, so an image's pixel
count alone never changes what the model sees; its field of view does. A model trained on 3 mm
scans at 304 px sees a vessel 40 µm wide as 13.8 input pixels at 1024; shown a whole 6 mm scan it
would see the same vessel half as wide. So a scan of another pixel size is first resampled to the
training pixel size (``Resampling``) and then cut into views of the training size:

- a resampled scan no larger than the training images is centred in one view of their size,
  mirrored at its borders to fill it (a black border is nothing the model has seen);
- a larger one is covered by views of the training size that overlap by half, whose logits are
  blended with weights falling linearly to each view's border.

A view's logits come back cropped to the scan's region, are blended, and are resized (bilinearly)
to the scan's own pixel grid, where they are thresholded: masks, scores and measurements are at
the scan's own size and pixel size. Points go the other way, by the same affine map (points are
``(x, y)``, pixel centres at ``i + 0.5``, so a continuous coordinate scales exactly). A scan at the
training size and pixel size is passed through untouched (``identity``), bit for bit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from samocta.core.errors import InputError

# pixel sizes that differ by less than this share are the same (float noise in widths given in mm)
SAME_SCALE = 1e-3
# the logit of a pixel no decoded view covers (a prompted mode whose points all lie in other views)
BACKGROUND_LOGIT = -20.0


@dataclass(frozen=True)
class TrainedFrame:
    """The images a model was trained on: their ``(H, W)`` and pixel size in µm (None: unknown)."""

    shape: tuple[int, int]
    pixel_um: float | None


@dataclass(frozen=True)
class Resampling:
    """How one scan is shown to a model: resampled by ``scale``, then cut into ``views`` of ``canvas`` size.

    Attributes:
        scan_shape: ``(H, W)`` of the scan.
        resampled_shape: ``(h, w)`` of the scan at the model's pixel size.
        canvas: ``(Hc, Wc)`` of each view (the training images' size).
        views: the ``(top, left)`` of each view in the resampled scan; negative: padding before it.
        identity: the scan is shown as it is (one view, no resampling).
    """

    scan_shape: tuple[int, int]
    resampled_shape: tuple[int, int]
    canvas: tuple[int, int]
    views: tuple[tuple[int, int], ...]
    identity: bool

    @property
    def scale(self) -> tuple[float, float]:
        """Resampled pixels per scan pixel along x and y."""
        return self.resampled_shape[1] / self.scan_shape[1], self.resampled_shape[0] / self.scan_shape[0]

    def describe(self) -> str:
        if self.identity:
            return "as is"
        (h, w), (ch, cw) = self.resampled_shape, self.canvas
        how = f"padded into one {cw} x {ch} view" if len(self.views) == 1 else f"{len(self.views)} overlapping {cw} x {ch} views"
        return f"resampled to {w} x {h} px, {how}"

    def image_views(self, image: np.ndarray) -> list[np.ndarray]:
        """The views of an image ``(H, W, C)`` (uint8): resampled bilinearly (antialiased when shrinking) and cut."""
        if self.identity:
            return [image]
        x = torch.as_tensor(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        shrink = self.resampled_shape[0] < self.scan_shape[0]
        x = F.interpolate(x, self.resampled_shape, mode="bilinear", align_corners=False, antialias=shrink)
        resampled = x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        out = []
        (h, w), (ch, cw) = self.resampled_shape, self.canvas
        for top, left in self.views:
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + ch, h), min(left + cw, w)
            pads = ((r0 - top, top + ch - r1), (c0 - left, left + cw - c1), (0, 0))
            # mirrored, not black: a black border is nothing the model saw in training (a FAZ adapter's
            # prompt-free Dice on 2.5 mm scans: 0.08 with zeros, 0.84 mirrored; benchmarks/RESULTS.md)
            view = resampled[r0:r1, c0:c1]
            out.append(np.ascontiguousarray(np.pad(view, pads, mode="reflect") if any(sum(p) for p in pads) else view))
        return out

    def points_to_view(self, coords: np.ndarray, labels: np.ndarray, view: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Scan-frame points ``(N, 2)`` ``(x, y)`` in one view's frame, keeping those that fall inside it."""
        coords = np.asarray(coords, np.float32).reshape(-1, 2)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if self.identity:
            return coords, labels
        sx, sy = self.scale
        top, left = view
        moved = np.stack([coords[:, 0] * sx - left, coords[:, 1] * sy - top], axis=1).astype(np.float32)
        ch, cw = self.canvas
        inside = (moved[:, 0] >= 0) & (moved[:, 0] < cw) & (moved[:, 1] >= 0) & (moved[:, 1] < ch)
        return moved[inside], labels[inside]

    def points_from_view(self, coords: np.ndarray, view: tuple[int, int]) -> np.ndarray:
        """The inverse of ``points_to_view``: a view's points ``(N, 2)`` in the scan's frame."""
        coords = np.asarray(coords, np.float32).reshape(-1, 2)
        if self.identity:
            return coords
        sx, sy = self.scale
        top, left = view
        return np.stack([(coords[:, 0] + left) / sx, (coords[:, 1] + top) / sy], axis=1).astype(np.float32)

    def merge(self, logits: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The views' logits ``(1, 1, Hc, Wc)`` (None: a view not decoded) blended into ``(1, 1, H, W)`` at the scan's size.

        Pixels that no decoded view covers get ``BACKGROUND_LOGIT``.
        """
        if len(logits) != len(self.views):
            raise InputError(f"need one logit map per view: {len(self.views)} views, {len(logits)} maps")
        if self.identity:
            if logits[0] is None:
                return torch.full((1, 1, *self.scan_shape), BACKGROUND_LOGIT)
            return logits[0]
        decoded = [t for t in logits if t is not None]
        device = decoded[0].device if decoded else torch.device("cpu")
        (h, w), (ch, cw) = self.resampled_shape, self.canvas
        total = torch.zeros((h, w), device=device)
        weight = torch.zeros((h, w), device=device)
        ramp = self._weights(device)
        for (top, left), out in zip(self.views, logits):
            if out is None:
                continue
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + ch, h), min(left + cw, w)
            part = out[0, 0, r0 - top : r1 - top, c0 - left : c1 - left].float()
            wpart = ramp[r0 - top : r1 - top, c0 - left : c1 - left]
            total[r0:r1, c0:c1] += wpart * part
            weight[r0:r1, c0:c1] += wpart
        blended = torch.where(weight > 0, total / weight.clamp_min(1e-12), torch.full_like(total, BACKGROUND_LOGIT))
        shrink = self.scan_shape[0] < h
        back = F.interpolate(blended[None, None], self.scan_shape, mode="bilinear", align_corners=False, antialias=shrink)
        return back

    def _weights(self, device: torch.device) -> torch.Tensor:
        """Per-pixel weight of a view: 1 with one view, else rising linearly from each border (never 0)."""
        ch, cw = self.canvas
        if len(self.views) == 1:
            return torch.ones((ch, cw), device=device)

        def ramp(n: int) -> torch.Tensor:
            i = torch.arange(n, device=device, dtype=torch.float32)
            return torch.minimum(i + 1, n - i) / math.ceil(n / 2)

        return ramp(ch)[:, None] * ramp(cw)[None, :]


def frame_of(trained_with: dict[str, str]) -> TrainedFrame | None:
    """The training images an adapter records (``LoRASam.trained_with``): their size and, from their width
    in mm (or an OCTA-500 FoV), their pixel size; for adapters written before the size was recorded,
    the FoV's OCTA-500 size. None when the adapter says neither."""
    from samocta.core.vocabulary import check_fov_mm
    from samocta.data.octa500 import FOV_MM, FOV_SIZE

    fov, size = trained_with.get("fov"), trained_with.get("image_size")
    if size:
        h, w = (int(v) for v in size.split("x"))
    elif fov in FOV_SIZE:
        h = w = FOV_SIZE[fov]
    else:
        return None
    width_mm = check_fov_mm(trained_with["fov_mm"], "the adapter's fov_mm") if trained_with.get("fov_mm") else FOV_MM.get(fov)
    return TrainedFrame((h, w), None if width_mm is None else width_mm * 1000.0 / w)


# Bounds on what one scan may cost: at most MAX_VIEWS views of the training size (a 12 x 12 mm scan shown
# to a 3 x 3 mm adapter takes 49), and at least MIN_SIDE px a side once at the adapter's pixel size.
MAX_VIEWS = 64
MIN_SIDE = 16


def _starts(size: int, canvas: int) -> list[int]:
    """Where the views along one axis start: centred padding when the scan fits, else views of the
    canvas size overlapping by half, the last one flush with the end."""
    if size <= canvas:
        return [-((canvas - size) // 2)]
    stride = max(1, canvas // 2)
    starts = list(range(0, size - canvas, stride))
    return starts + [size - canvas]


def plan_resampling(
    scan_shape: tuple[int, int], scan_pixel_um: float | None, frame: TrainedFrame | None, where: str = "the scan"
) -> Resampling:
    """How to show a scan of ``scan_shape`` with ``scan_pixel_um`` to a model trained on ``frame``.

    Args:
        scan_shape: ``(H, W)``.
        scan_pixel_um: the scan's pixel size (None: unknown).
        frame: the model's training images (None: the model records none; the scan is shown as it is).
        where: the scan, for the message.

    Raises:
        InputError: the scan's size differs from the training images' and a pixel size is unknown,
            so that it cannot be brought to the model's scale; it is smaller than ``MIN_SIDE`` a side, in
            its own pixels or at that scale; or it needs more than ``MAX_VIEWS`` views.
    """
    scan_shape = (int(scan_shape[0]), int(scan_shape[1]))
    if min(scan_shape) < MIN_SIDE:  # nothing to see, whatever its width in mm says (a resampled pixel is no detail)
        raise InputError(f"{where} is {scan_shape[1]} x {scan_shape[0]} px: too small to segment (a scan is at least "
                         f"{MIN_SIDE} px a side)")
    identity = Resampling(scan_shape, scan_shape, scan_shape, ((0, 0),), True)
    if frame is None:
        return identity
    canvas = (int(frame.shape[0]), int(frame.shape[1]))
    if scan_pixel_um is None or frame.pixel_um is None:
        if scan_shape == canvas:
            return identity
        unknown = "the scan's" if scan_pixel_um is None else "the adapter's training images'"
        raise InputError(
            f"{where} is {scan_shape[1]} x {scan_shape[0]} px and the adapter was trained on {canvas[1]} x {canvas[0]} px "
            f"images; bringing it to the adapter's scale needs both pixel sizes, and {unknown} is unknown: pass --fov-mm "
            "(the scans' width in mm) or write fov_mm into a dataset.json beside the images"
        )
    scale = scan_pixel_um / frame.pixel_um
    if abs(scale - 1) <= SAME_SCALE and scan_shape == canvas:
        return identity
    if abs(scale - 1) <= SAME_SCALE:
        scale = 1.0
    resampled = (max(1, round(scan_shape[0] * scale)), max(1, round(scan_shape[1] * scale)))
    if min(resampled) < MIN_SIDE:
        raise InputError(f"{where} is {resampled[1]} x {resampled[0]} px at the adapter's pixel size ({frame.pixel_um:.2f} µm): "
                         f"too small to segment (at least {MIN_SIDE} px a side); check its width in mm (--fov-mm, dataset.json)")
    views = tuple(itertools.product(_starts(resampled[0], canvas[0]), _starts(resampled[1], canvas[1])))
    if len(views) > MAX_VIEWS:
        raise InputError(f"{where} at the adapter's pixel size ({frame.pixel_um:.2f} µm) is {resampled[1]} x {resampled[0]} px, "
                         f"{len(views)} views of {canvas[1]} x {canvas[0]}, more than the {MAX_VIEWS} a scan may take; check its "
                         "width in mm (--fov-mm, dataset.json) against the adapter's")
    return Resampling(scan_shape, resampled, canvas, views, False)
