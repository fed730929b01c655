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

import math
import typing
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samocta.core.errors import InputError
from samocta.model.frame import resized_shape, to_model_frame_torch

MaskRule = Literal["most_confident", "single"]
MASK_RULES: tuple[str, ...] = typing.get_args(MaskRule)
"""How a mask is chosen among the decoder's outputs: "most_confident" (the paper's rule and SAM's
own for ambiguous prompts: the multimask output with the highest predicted IoU) or "single" (the
decoder's single-mask output, which the reference code trains and scores)."""


@dataclass
class Embedding:
    """Image embeddings and the sizes needed to map masks back.

    Attributes:
        features: ``(B, C, E, E)`` image-encoder output.
        input_size: ``(h, w)`` of the resized image inside the padded encoder input.
        original_size: ``(H, W)`` of the images given.
        fine: ``(B, width, H, W)`` the fine path's stem features of the images at their own size (a model
            with the path; ``samocta.model.fine``), else None.
    """

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    fine: torch.Tensor | None = None

    def rows(self, index: Sequence[int] | torch.Tensor) -> "Embedding":
        """The embeddings of some of the images, in the order given."""
        return Embedding(self.features[index], self.input_size, self.original_size,
                         None if self.fine is None else self.fine[index])


@dataclass
class MaskOutput:
    """Decoder output: the selected mask of each image and every candidate it was chosen from.

    Attributes:
        logits: ``(B, 1, H, W)`` the selected mask at the original size (at the decoder's
            low resolution ``4E`` when decoded with ``full_size=False``).
        low_res: ``(B, K, 4E, 4E)`` every candidate (K = 3 with the "most_confident" rule, else 1).
        iou: ``(B, K)`` the decoder's predicted IoU of each candidate.
        selected: ``(B,)`` index into K of the selected candidate.
    """

    logits: torch.Tensor
    low_res: torch.Tensor
    iou: torch.Tensor
    selected: torch.Tensor

    @property
    def selected_low_res(self) -> torch.Tensor:
        """``(B, 1, 4E, 4E)``: the selected candidate at the decoder's resolution, the mask prompt of a next decode."""
        return self.low_res[torch.arange(self.low_res.shape[0], device=self.low_res.device), self.selected].unsqueeze(1)

    def masks(self, threshold: float = 0.5) -> np.ndarray:
        """The selected masks, binarised: bool ``(B, H, W)`` (see ``binarize``)."""
        return binarize(self.logits, threshold)


def binarize(logits: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """Masks from logits ``(B, 1, H, W)``: bool ``(B, H, W)`` where ``sigmoid(logits) > threshold``.

    Compared on the logits (``logits > log(t / (1 - t))``, the same set without the rounding of a
    sigmoid near 0.5); the one place the package turns logits into a mask.
    """
    if not 0 < threshold < 1:
        raise InputError(f"the threshold (--threshold) must lie between 0 and 1, got {threshold}")
    return (logits[:, 0].float() > math.log(threshold / (1 - threshold))).cpu().numpy()


def takes_logits(model) -> bool:
    """Whether a model's mask prompt is made for the previous decode's logits: the official SAM's
    (trained so); not the tiny SAM's, whose frozen mask-prompt path was pretrained on its clicks' map
    only. Summing logits into it lowers Dice even for an adapter trained on click sessions that fed
    them back (synthetic FAZ, 10 test subjects: Dice after 10 clicks 0.863 decoded with them, 0.901
    without; ``benchmarks/RESULTS.md``, issue 36), so click sessions (``samocta.evaluate.clicks``) train and
    decode it without."""
    return getattr(model, "click_sigma", None) is None


# The most points one image's prompt may hold in a decode: the decoder's attention, and so its memory, grows
# with the square of the points (12,000 points took 5.4 GB). Far above any prompt the package makes (a
# global prompt is capped at 256, a click session at 100 clicks).
MAX_DECODER_POINTS = 1024


def split_prompts(
    coords: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    labels: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-image ``(coords (N_i, 2), labels (N_i,))`` from a padded batch or from per-image lists.

    Points labelled -1 are padding and are dropped: each image keeps exactly its own points.

    Args:
        coords: float ``(B, N, 2)``, or B arrays ``(N_i, 2)``; ``(x, y)``, pixel centres at ``i + 0.5``.
        labels: int ``(B, N)``, or B arrays ``(N_i,)``: 1 positive, 0 negative, -1 padding.

    Raises:
        InputError: the two do not pair up, a label is not -1, 0 or 1, a coordinate is not finite, or an
            image has more than ``MAX_DECODER_POINTS`` points.
    """
    if len(coords) != len(labels):
        raise InputError(f"need one label list per coordinate list: {len(coords)} vs {len(labels)}")
    out = []
    for c, lab in zip(coords, labels):
        c = torch.as_tensor(np.asarray(c) if not isinstance(c, torch.Tensor) else c, dtype=torch.float32, device=device)
        lab = torch.as_tensor(np.asarray(lab) if not isinstance(lab, torch.Tensor) else lab, dtype=torch.int64, device=device)
        c = c.reshape(-1, 2) if c.numel() == 0 else c
        if c.ndim != 2 or c.shape[1] != 2 or lab.ndim != 1 or lab.shape[0] != c.shape[0]:
            raise InputError(f"an image's points must be coords (N, 2) with labels (N,), got {tuple(c.shape)} and {tuple(lab.shape)}")
        if int((lab >= 0).sum()) > MAX_DECODER_POINTS:
            raise InputError(f"an image's prompt holds {int((lab >= 0).sum()):,} points; the decoder takes at most "
                             f"{MAX_DECODER_POINTS:,} per image (its memory grows with their square)")
        if bool(((lab < -1) | (lab > 1)).any()):
            raise InputError(f"point labels must be 1 (positive), 0 (negative) or -1 (padding), got {sorted(set(lab.tolist()))}")
        if not bool(torch.isfinite(c[lab >= 0]).all()):
            raise InputError("point coordinates must be finite numbers; got NaN or infinity")
        keep = lab >= 0
        out.append((c[keep], lab[keep]))
    return out


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


def mask_prompt(
    coords: torch.Tensor, labels: torch.Tensor, previous: torch.Tensor | None, grid: int, img_size: int,
    sigma: float | None,
) -> torch.Tensor | None:
    """What enters SAM's dense mask prompt: the previous decode's low-resolution logits (or None), and
    for the tiny SAM (``sigma`` set) its clicks' map (``click_map``) added to them.

    The one rule for the kernel's decoder and the exported graph (``samocta.model.export``). For the official
    SAM it is SamPredictor's ``mask_input``: the logits as they are.

    Args:
        coords, labels: ``(P, N, 2)`` model-frame points and ``(P, N)`` labels, as ``click_map`` takes them.
        previous: ``(P, 1, grid, grid)`` logits, or None.
        grid, img_size, sigma: as ``click_map`` takes them (``sigma`` None: no click map).

    Returns:
        ``(P, 1, grid, grid)``, or None (no mask prompt: SAM's learnt "no mask" embedding).
    """
    if sigma is None:
        return previous
    clicks = click_map(coords, labels, grid, img_size, sigma)
    return clicks if previous is None else clicks + previous


def predict_masks_paired(
    decoder: nn.Module,
    image_embeddings: torch.Tensor,
    image_pe: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    features: bool = False,
) -> tuple[torch.Tensor, ...]:
    """``MaskDecoder.predict_masks`` for P (embedding, prompt) pairs at once.

    Args:
        decoder: segment-anything ``MaskDecoder``.
        image_embeddings: ``(P, C, E, E)``, one per prompt set (repeat an image's embedding for
            several prompt sets on it).
        image_pe: ``(1, C, E, E)`` from ``PromptEncoder.get_dense_pe``.
        sparse: ``(P, T, C)`` point embeddings; dense: ``(P, C, E, E)``.

        features: also return the mask features and the mask tokens' hypernetwork outputs (the masks
            are their dot product), which the fine path reads (``samocta.model.fine``).

    Returns:
        all mask logits ``(P, 1 + num_multimask, 4E, 4E)`` and predicted IoUs ``(P, 1 + num_multimask)``;
        index 0 is the single-mask output, 1: the multimask outputs. With ``features``, then the mask
        features ``(P, C / 8, 4E, 4E)`` and the hypernetwork outputs ``(P, 1 + num_multimask, C / 8)``.
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
    if features:
        return masks, decoder.iou_prediction_head(hs[:, 0, :]), upscaled, hyper
    return masks, decoder.iou_prediction_head(hs[:, 0, :])


class PromptableSam(nn.Module):
    """A SAM (from ``build_sam``) with a batched, original-size forward pass.

    Args:
        sam: segment-anything ``Sam`` with ``model_type`` and ``click_sigma`` attributes.
        mask_rule: which decoder output is the mask, one of ``MASK_RULES`` (default: the paper's
            "most_confident"). ``decode`` uses it unless told otherwise, so everything that decodes
            with a model (training, validation, evaluation, prediction, the widget) follows the
            rule the model was trained with.
    """

    def __init__(self, sam: nn.Module, mask_rule: str = "most_confident") -> None:
        super().__init__()
        if mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {mask_rule!r}")
        self.sam = sam
        self.model_type: str = getattr(sam, "model_type", "unknown")
        self.click_sigma: float | None = getattr(sam, "click_sigma", None)
        self.mask_rule = mask_rule
        # set by samocta.model.speed.enable_half_frozen: the encoder's weights are stored in this dtype
        self.encoder_dtype: torch.dtype | None = None

    @property
    def img_size(self) -> int:
        return int(self.sam.image_encoder.img_size)

    @property
    def fine_path(self) -> nn.Module | None:
        """The fine path (``samocta.model.fine.FinePath``) when the model has one, else None."""
        return getattr(self.sam, "fine_path", None)

    @property
    def device(self) -> torch.device:
        return self.sam.pixel_mean.device

    def preprocess(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """uint8 ``(B, H, W, 3)`` -> normalised, padded ``(B, 3, S, S)``, with the resized and original sizes."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"images must be (B, H, W, 3) uint8, got {tuple(x.shape)}")
        if x.dtype != torch.uint8:
            hint = ""
            if x.is_floating_point():
                finite = torch.isfinite(x)
                hint = (" with NaN or infinite values" if not bool(finite.all()) else
                        "; its values lie in [0, 1]: multiply by 255 and convert with .astype(np.uint8)" if float(x.max()) <= 1 else "")
            raise InputError(f"images must be uint8 (0-255) as OCTA-500 stores them, got {x.dtype}{hint}")
        original = (int(x.shape[1]), int(x.shape[2]))
        size = resized_shape(original, self.img_size)
        x = x.to(self.device).permute(0, 3, 1, 2).float()
        # as segment-anything's ResizeLongestSide.apply_image_torch
        x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
        return self.sam.preprocess(x), size, original

    def embed(self, images: np.ndarray | torch.Tensor) -> Embedding:
        """Image embeddings of a batch; reuse them with ``decode`` when only the prompts change."""
        x, size, original = self.preprocess(images)
        fine = None
        if self.fine_path is not None:  # the stem reads the images at their own pixels, normalised as SAM's input
            own = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).to(self.device)
            own = (own.permute(0, 3, 1, 2).float() - self.sam.pixel_mean) / self.sam.pixel_std
            fine = self.fine_path.image_features(own)
        if self.encoder_dtype is None:
            return Embedding(self.sam.image_encoder(x), size, original, fine)
        # half-precision weights need autocast; the embeddings go on in fp32
        with torch.autocast(self.device.type, dtype=self.encoder_dtype):
            features = self.sam.image_encoder(x)
        return Embedding(features.float(), size, original, fine)

    def to_model_frame(self, coords: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """``(x, y)`` original-image points (pixel centres at i + 0.5) -> this model's input frame (``samocta.model.frame``)."""
        return to_model_frame_torch(coords, original_size, self.img_size)

    def decode_candidates(
        self, features: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor, original_size: tuple[int, int],
        mask_input: torch.Tensor | None = None, with_features: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Every decoder output for P (embedding, prompt) pairs, the prompts used exactly as given.

        Args:
            features: ``(P, C, E, E)`` embeddings (repeat an image's for several prompts on it).
            coords: float ``(P, N, 2)`` ``(x, y)`` original pixels, pixel centres at ``i + 0.5``.
            labels: int ``(P, N)``; -1 here is SAM's "not a point" token, which the decoder attends
                to (``decode`` drops such padding; pretraining keeps its recipe's padding).
            original_size: ``(H, W)`` of the images.
            mask_input: ``(P, 1, 4E, 4E)`` low-resolution logits of an earlier decode (SAM's mask
                prompt, as ``SamPredictor``'s ``mask_input``), or None. The tiny SAM, whose mask
                prompt carries its clicks, gets their sum (``mask_prompt``).

            with_features: also the mask features and hypernetwork outputs (``predict_masks_paired``).

        Returns:
            low-resolution logits ``(P, 1 + 3, 4E, 4E)`` and predicted IoUs ``(P, 4)``: index 0 the
            single-mask output, 1: the three multimask outputs (and with ``with_features`` those two).
        """
        pts = self.to_model_frame(coords, original_size)
        grid = 4 * self.sam.prompt_encoder.image_embedding_size[0]
        if mask_input is not None and tuple(mask_input.shape[1:]) != (1, grid, grid):
            raise InputError(f"mask_input must be low-resolution logits (P, 1, {grid}, {grid}), got {tuple(mask_input.shape)}")
        dense_in = mask_prompt(pts, labels, mask_input, grid, self.img_size, self.click_sigma)
        # boxes=None: the prompt encoder appends its one padding point, as SamPredictor does
        sparse, dense = self.sam.prompt_encoder(points=(pts, labels), boxes=None, masks=dense_in)
        return predict_masks_paired(self.sam.mask_decoder, features, self.sam.prompt_encoder.get_dense_pe(), sparse, dense,
                                    features=with_features)

    def decode(
        self,
        embedding: Embedding,
        coords: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        labels: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        mask_rule: str | None = None,
        full_size: bool = True,
        mask_input: torch.Tensor | None = None,
    ) -> MaskOutput:
        """Masks for one prompt per embedded image, each decoded with exactly its own points.

        SAM's decoder attends to every prompt token, so padding one image's prompt to the length
        of another's would change its mask. Images are therefore grouped by their number of points
        and each group decoded in one call; every image sees its own points plus the single
        padding point SAM's prompt encoder adds when there is no box. The result does not depend
        on the other images of the batch.

        Args:
            embedding: from ``embed`` (B images).
            coords: float ``(B, N, 2)`` or B arrays ``(N_i, 2)``: ``(x, y)`` in original pixels,
                pixel centres at ``i + 0.5``. ``N_i`` may be 0 (SAM's padding point only: no prompt).
            labels: int ``(B, N)`` or B arrays ``(N_i,)``: 1 positive, 0 negative, -1 padding
                (dropped).
            mask_rule: one of ``MASK_RULES``; default the model's ``mask_rule``.
            full_size: upsample the selected mask to the original size (False: ``logits`` stays at
                the decoder's low resolution, cheaper for training at low resolution; refused by a model
                with the fine path, whose mask exists only at the images' own size).
            mask_input: ``(B, 1, 4E, 4E)`` the low-resolution logits of each image's previous decode
                (``MaskOutput.selected_low_res``), fed back as SAM's mask prompt; None: no mask prompt.

        Returns:
            ``MaskOutput``.
        """
        rule = self.mask_rule if mask_rule is None else mask_rule
        if rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {rule!r}")
        dev = self.device
        feats = embedding.features
        prompts = split_prompts(coords, labels, dev)
        if len(prompts) != feats.shape[0]:
            raise InputError(f"need one prompt per image: {feats.shape[0]} embeddings, {len(prompts)} prompts")
        if mask_input is not None and mask_input.shape[0] != feats.shape[0]:
            raise InputError(f"need one mask_input per image: {feats.shape[0]} embeddings, {mask_input.shape[0]} masks")
        fine = self.fine_path is not None  # the fine path draws at the images' own size
        if fine and not full_size:  # SAM's grid alone would be a mask the fine model never draws
            raise InputError("this model draws its masks on the fine path, at the images' own size: decode with full_size=True")
        if fine and embedding.fine is None:
            raise InputError("this model draws its masks on the fine path: decode embeddings made by its own embed()")
        groups: dict[int, list[int]] = {}
        for i, (c, _) in enumerate(prompts):
            groups.setdefault(int(c.shape[0]), []).append(i)
        lows, ious, ups, hypers, order = [], [], [], [], []
        for idx in groups.values():
            c = torch.stack([prompts[i][0] for i in idx])
            lab = torch.stack([prompts[i][1] for i in idx])
            masks_in = None if mask_input is None else mask_input[idx].to(dev, torch.float32)
            out = self.decode_candidates(feats[idx], c, lab, embedding.original_size, masks_in, with_features=fine)
            lows.append(out[0])
            ious.append(out[1])
            if fine:
                ups.append(out[2])
                hypers.append(out[3])
            order.extend(idx)
        inverse = torch.empty(len(order), dtype=torch.long, device=dev)
        inverse[torch.tensor(order, device=dev)] = torch.arange(len(order), device=dev)
        all_low, all_iou = torch.cat(lows)[inverse], torch.cat(ious)[inverse]
        # index 0 is the single-mask output, 1: the three multimask outputs (as MaskDecoder.forward)
        if rule == "single":
            low_res, iou = all_low[:, :1], all_iou[:, :1]
            selected = torch.zeros(iou.shape[0], dtype=torch.long, device=dev)
        else:
            low_res, iou = all_low[:, 1:], all_iou[:, 1:]
            selected = iou.argmax(dim=1)
        rows = torch.arange(low_res.shape[0], device=dev)
        best = low_res[rows, selected].unsqueeze(1)
        if full_size:
            best = self.sam.postprocess_masks(best, embedding.input_size, embedding.original_size)
        if fine:  # the selected mask's token reads the fine path's correction at the images' own pixels
            token = selected if rule == "single" else selected + 1
            hyper = torch.cat(hypers)[inverse][rows, token]
            best = best + self.fine_path.correction(torch.cat(ups)[inverse], hyper, embedding.fine, embedding.input_size,
                                                    self.img_size)
        return MaskOutput(best, low_res, iou, selected)

    def decode_unprompted(self, embedding: Embedding, mask_rule: str | None = None) -> MaskOutput:
        """``decode`` with no points for every image (SAM's padding point only: the "none" mode)."""
        b = embedding.features.shape[0]
        return self.decode(embedding, [np.zeros((0, 2), np.float32)] * b, [np.zeros(0, np.int64)] * b, mask_rule)

    def forward(
        self,
        images: np.ndarray | torch.Tensor,
        coords: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        labels: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
        mask_rule: str | None = None,
        decode_with: "typing.Callable[[Embedding], typing.Any] | None" = None,
    ) -> "MaskOutput | typing.Any":
        """``decode(embed(images), coords, labels, mask_rule)``; see ``decode``.

        With ``decode_with``, the images' embedding goes to that function instead (``coords`` and
        ``labels`` unused), e.g. training's click sessions (``samocta.train.sessions.training_sessions``): it is
        part of ``forward`` so that a DistributedDataParallel wrapper sees the whole computation.
        """
        if decode_with is not None:
            return decode_with(self.embed(images))
        return self.decode(self.embed(images), coords, labels, mask_rule)
