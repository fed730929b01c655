"""The fine path: a mask drawn at the scan's own pixels, not on SAM's 4x-token grid.

SAM's decoder draws its masks on a grid four times its token grid (256 x 256 for a 1024 px input, 128 x 128
for the tiny SAM at 512 px), then resizes them to the scan: a large vessel 2-4 px wide in a 304 px OCTA-500
scan falls between grid points, and its borders come out half a pixel too wide (``benchmarks/RESULTS.md``,
issue 38). The fine path adds, for the selected mask, a correction drawn at the scan's own resolution from
the scan's own pixels:

    logits = resize(low_res) + hyper . refine(resize(upscaled), stem(image))

``upscaled`` are the decoder's mask features (``C / 8`` channels on the 4E grid), ``hyper`` the selected mask
token's hypernetwork output that SAM's own mask is ``hyper . upscaled``; ``stem`` is a light convolutional
stem on the scan at its own pixels (computed once per image with the embedding, reused by every prompt), and
``refine`` two convolutions on the mask features resized to the scan and the stem's features. The mask token
reads the correction as it reads SAM's features, so it stays promptable; the last convolution starts at
zero, so a model with the path starts as SAM exactly (as LoRA does). The designs learnt from: HQ-SAM (Ke et
al., NeurIPS 2023: early features fused with the decoder's mask features, read by an output token) and a
convolutional stem at a single-scale ViT's full resolution; the code is the project's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# channels of the stem and of the refinement: a few per pixel, as many as a vessel's border needs to be told
# from its neighbours, cheap on a CPU at the scan's own size (0.9 GMAC per mask at 304 x 304)
FINE_WIDTH = 24


class FinePath(nn.Module):
    """A correction of SAM's selected mask drawn at the scan's own pixels (see the module's docstring).

    Args:
        mask_channels: the decoder's mask-feature channels (``transformer_dim // 8``: 16 for the tiny SAM,
            32 for the official types).
        width: the stem's and the refinement's channels.
    """

    def __init__(self, mask_channels: int, width: int = FINE_WIDTH) -> None:
        super().__init__()
        self.mask_channels, self.width = int(mask_channels), int(width)
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU())
        self.lift = nn.Conv2d(mask_channels, width, 1)
        self.refine = nn.Sequential(nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, mask_channels, 1))
        out = self.refine[-1]
        nn.init.zeros_(out.weight)  # the correction starts at zero: the model starts as SAM exactly
        nn.init.zeros_(out.bias)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """The stem's features of normalised images ``(B, 3, H, W)`` at their own size: ``(B, width, H, W)``,
        once per image (every prompt on it reads them)."""
        return self.stem(images)

    def correction(self, upscaled: torch.Tensor, hyper: torch.Tensor, features: torch.Tensor, input_size: tuple[int, int],
                   img_size: int) -> torch.Tensor:
        """The selected masks' correction at the images' own size.

        Args:
            upscaled: ``(P, C8, G, G)`` the decoder's mask features of each (image, prompt) pair, G = 4E.
            hyper: ``(P, C8)`` the selected mask token's hypernetwork output (SAM's mask is ``hyper . upscaled``).
            features: ``(P, width, H, W)`` the stem's features of each pair's image.
            input_size: ``(h, w)`` of the resized image inside the padded encoder input of side ``img_size``.

        Returns:
            ``(P, 1, H, W)`` logits to add to SAM's mask resized to ``(H, W)``.
        """
        grid = upscaled.shape[-1]
        rows, cols = (max(1, round(grid * s / img_size)) for s in input_size)  # the image's part of the padded grid
        mask_features = F.interpolate(upscaled[..., :rows, :cols], size=features.shape[-2:], mode="bilinear",
                                      align_corners=False)
        refined = self.refine(features + self.lift(mask_features))
        return torch.einsum("pc,pchw->phw", hyper, refined).unsqueeze(1)
