"""The batched forward pass: uint8 images and point prompts at the original size -> mask logits at that size.

images ``(B, H, W, 3)`` -> SAM's resize (longest side to the encoder size), normalise, pad ->
image encoder -> per image: prompt encoder + mask decoder with that image's points -> logits
upsampled, cropped and resized back to ``(H, W)``.

segment-anything's ``MaskDecoder.predict_masks`` repeats ONE image embedding for every prompt set
it gets, so B embeddings with B prompt sets in one call do not pair up (the reference code was
stuck at batch 1 for that and for variable prompt counts). ``predict_masks_paired`` runs the same
decoder modules with prompt set i paired to embedding i, in one call; a test checks it against
the official per-image call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samocta.prompts import resized_shape


@dataclass
class Embedding:
    """Image embeddings and the sizes needed to map masks back.

    Attributes:
        features: ``(B, C, E, E)`` image-encoder output.
        input_size: ``(h, w)`` of the resized image inside the padded encoder input.
        original_size: ``(H, W)`` of the images given.
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]

    def select(self, index: int | slice | list[int]) -> "Embedding":
        """The embeddings of some images of the batch (for decoding them with new prompts)."""
        feats = self.features[index] if not isinstance(index, int) else self.features[index : index + 1]
        return Embedding(feats, self.input_size, self.original_size)


@dataclass
class MaskOutput:
    """Decoder output.

    Attributes:
        logits: ``(B, 1, H, W)`` the selected mask (the most confident one when multimask).
        all_logits: ``(B, K, H, W)`` every mask (K = 3 with multimask, else 1).
        iou: ``(B, K)`` the decoder's predicted IoU of each mask.
        low_res: ``(B, K, 4E, 4E)`` the decoder's own low-resolution logits.
    """

    logits: torch.Tensor
    all_logits: torch.Tensor
    iou: torch.Tensor
    low_res: torch.Tensor


def click_map(coords: torch.Tensor, labels: torch.Tensor, grid: int, img_size: int, sigma: float, amplitude: float = 8.0) -> torch.Tensor:
    """Clicks drawn as a signed Gaussian map, SAM's dense mask-prompt input for the tiny model.

    Args:
        coords: ``(B, N, 2)`` points in the model frame (SAM convention: pixel centres on integers).
        labels: ``(B, N)``: 1 positive (+), 0 negative (-), -1 padding (ignored).
        grid: side of the mask input (4 x the embedding size).
        img_size: encoder input side.
        sigma: Gaussian width in model-frame pixels.

    Returns:
        ``(B, 1, grid, grid)`` in [-amplitude, amplitude].
    """
    step = img_size / grid
    centres = (torch.arange(grid, device=coords.device, dtype=coords.dtype) + 0.5) * step - 0.5
    sign = torch.where(labels == 1, 1.0, torch.where(labels == 0, -1.0, 0.0)).to(coords.dtype)
    gy = torch.exp(-((centres[None, None, :] - coords[..., 1:2]) ** 2) / (2 * sigma**2))  # (B, N, grid)
    gx = torch.exp(-((centres[None, None, :] - coords[..., 0:1]) ** 2) / (2 * sigma**2))
    maps = torch.einsum("bn,bny,bnx->byx", sign, gy, gx)
    return (amplitude * maps.clamp(-1, 1)).unsqueeze(1)


def predict_masks_paired(
    decoder: nn.Module,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.predict_masks`` for P (embedding, prompt) pairs at once.

    Args:
        decoder: segment-anything ``MaskDecoder``.
        image_embeddings: ``(P, C, E, E)``, one per prompt set (repeat an image's embedding for
            several prompt sets on it).
        image_pe: ``(1, C, E, E)`` from ``PromptEncoder.get_dense_pe``.
        sparse: ``(P, T, C)`` point embeddings; dense: ``(P, C, E, E)``.

    Returns:
        all mask logits ``(P, 1 + num_multimask, 4E, 4E)`` and predicted IoUs ``(P, 1 + num_multimask)``;
        index 0 is the single-mask output, 1: the multimask outputs.
    """
    p = sparse.shape[0]
    out_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(p, -1, -1), sparse], dim=1)
    src = image_embeddings + dense
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, image_pe.expand(p, -1, -1, -1), tokens)
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens, :]
    hyper = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    b, c, h, w = upscaled.shape
    masks = (hyper @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
    return masks, decoder.iou_prediction_head(hs[:, 0, :])


class PromptableSam(nn.Module):
    """A SAM (from ``build_sam``) with a batched, original-size forward pass.

    Args:
        sam: segment-anything ``Sam`` with ``model_type`` and ``click_sigma`` attributes.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.sam = sam
        self.model_type: str = getattr(sam, "model_type", "unknown")
        self.click_sigma: float | None = getattr(sam, "click_sigma", None)
        # set by samocta.model.speed.enable_half_frozen: the encoder's weights are stored in this dtype
        self.encoder_dtype: torch.dtype | None = None

    @property
    def img_size(self) -> int:
        return int(self.sam.image_encoder.img_size)

    @property
    def device(self) -> torch.device:
        return self.sam.pixel_mean.device

    def preprocess(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """uint8 ``(B, H, W, 3)`` -> normalised, padded ``(B, 3, S, S)``, with the resized and original sizes."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3) uint8, got {tuple(x.shape)}")
        original = (int(x.shape[1]), int(x.shape[2]))
        size = resized_shape(original, self.img_size)
        x = x.to(self.device).permute(0, 3, 1, 2).float()
        # as segment-anything's ResizeLongestSide.apply_image_torch
        x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
        return self.sam.preprocess(x), size, original

    def embed(self, images: np.ndarray | torch.Tensor) -> Embedding:
        """Image embeddings of a batch; reuse them with ``decode`` when only the prompts change."""
        x, size, original = self.preprocess(images)
        if self.encoder_dtype is None:
            return Embedding(self.sam.image_encoder(x), size, original)
        # half-precision weights need autocast; the embeddings go on in fp32
        with torch.autocast(self.device.type, dtype=self.encoder_dtype):
            features = self.sam.image_encoder(x)
        return Embedding(features.float(), size, original)

    def to_model_frame(self, coords: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """``(x, y)`` original-image points (pixel centres at i + 0.5) -> SAM's input frame (see ``prompts``)."""
        h, w = resized_shape(original_size, self.img_size)
        scale = torch.tensor([w / original_size[1], h / original_size[0]], device=coords.device, dtype=coords.dtype)
        return coords * scale - 0.5

    def decode(
        self,
        embedding: Embedding,
        coords: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        multimask: bool = False,
        full_size: bool = True,
    ) -> MaskOutput:
        """Masks for one prompt per embedded image.

        Args:
            embedding: from ``embed`` (B images).
            coords: float ``(B, N, 2)`` ``(x, y)`` in original pixels, pixel centres at ``i + 0.5``;
                ``N`` may be 0 (SAM's padding point only: the "no prompt" mode).
            labels: int ``(B, N)``: 1 positive, 0 negative, -1 padding ("not a point").
            multimask: return SAM's three masks and select the one with the highest predicted IoU.
            full_size: also upsample to the original size (False: only ``low_res`` is filled;
                cheaper for training at low resolution).

        Returns:
            ``MaskOutput``.
        """
        dev = self.device
        coords = torch.as_tensor(coords, dtype=torch.float32, device=dev)
        labels = torch.as_tensor(labels, dtype=torch.int64, device=dev)
        feats = embedding.features
        if coords.shape[0] != feats.shape[0] or labels.shape != coords.shape[:2]:
            raise ValueError(
                f"need one prompt per image: {feats.shape[0]} embeddings, coords {tuple(coords.shape)}, labels {tuple(labels.shape)}"
            )
        pts = self.to_model_frame(coords, embedding.original_size)
        pe = self.sam.prompt_encoder.get_dense_pe()
        dense_in = None
        if self.click_sigma is not None:
            grid = 4 * self.sam.prompt_encoder.image_embedding_size[0]
            dense_in = click_map(pts, labels, grid, self.img_size, self.click_sigma)
        sparse, dense = self.sam.prompt_encoder(points=(pts, labels), boxes=None, masks=dense_in)
        all_low, all_iou = predict_masks_paired(self.sam.mask_decoder, feats, pe, sparse, dense)
        keep = slice(1, None) if multimask else slice(0, 1)  # as MaskDecoder.forward selects
        low_res, iou = all_low[:, keep], all_iou[:, keep]
        if not full_size:
            return MaskOutput(low_res[:, :1], low_res, iou, low_res)
        masks = self.sam.postprocess_masks(low_res, embedding.input_size, embedding.original_size)
        best = iou.argmax(dim=1) if multimask else torch.zeros(iou.shape[0], dtype=torch.long, device=dev)
        selected = masks[torch.arange(masks.shape[0], device=dev), best].unsqueeze(1)
        return MaskOutput(selected, masks, iou, low_res)

    def forward(
        self, images: np.ndarray | torch.Tensor, coords: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, multimask: bool = False
    ) -> MaskOutput:
        """``decode(embed(images), coords, labels, multimask)``; see ``decode``."""
        return self.decode(self.embed(images), coords, labels, multimask)
