"""SAM's per-click part as an ONNX graph, for decoding prompts in a browser with no kernel.

The image encoder runs once per image (at book-build time for the rendered pages); what runs per
click is the prompt encoder and the mask decoder. ``export_decoder_onnx`` writes that part as one
graph whose inputs are an image embedding and the clicked points in original-image pixels and
whose outputs are the selected mask's logits at the original size, every candidate and its IoU.

It starts from segment-anything's ``SamOnnxModel`` (its point and mask embedding and its mask
post-processing, written without data-dependent control flow) and differs where this package
decodes differently, so that the browser shows exactly the mask Python decodes:

- points come in original pixels with pixel centres at ``i + 0.5`` and are taken to the model's
  frame inside the graph (``samocta.model.frame``), and SAM's one padding point is appended inside too;
- the tiny SAM's clicks also enter as a signed Gaussian map through the dense mask prompt
  (``click_map``), computed in the graph;
- the previous decode's low-resolution logits come back in as the mask prompt (``mask_input`` with
  ``has_mask_input`` 1; 0: none), through ``mask_prompt``, the rule the kernel decodes with, and the
  selected candidate's low-resolution logits go out (``low_res_mask``) for the next click;
- the mask is chosen by the model's own rule (``"most_confident"``: the multimask output with the
  highest predicted IoU; ``"single"``: the single-mask output), not by ``SamOnnxModel``'s
  point-count rule.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from segment_anything.utils.onnx import SamOnnxModel

from samocta.core.errors import InputError
from samocta.model.frame import resized_shape, to_model_frame_torch
from samocta.model.promptable import PromptableSam, mask_prompt, predict_masks_paired

INPUT_NAMES = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")
OUTPUT_NAMES = ("masks", "low_res_masks", "iou_predictions", "low_res_mask")


class PromptDecoderGraph(SamOnnxModel):
    """Prompt encoder + mask decoder of a ``PromptableSam`` for images of one size, as one graph.

    Args:
        model: the model whose decoder to export (a ``LoRASam`` too: LoRA lives in the encoder,
            whose output is the input here; a trained decoder is exported as trained).
        image_size: ``(H, W)`` of the images whose embeddings the graph decodes.

    Forward inputs:
        image_embeddings: float ``(1, C, E, E)`` from ``PromptableSam.embed``.
        point_coords: float ``(1, N, 2)`` ``(x, y)`` in original pixels, pixel centres at ``i + 0.5``.
        point_labels: float ``(1, N)``: 1 positive, 0 negative.
        mask_input: float ``(1, 1, 4E, 4E)``: the previous decode's ``low_res_mask`` (any values when
            ``has_mask_input`` is 0).
        has_mask_input: float ``(1,)``: 1 to feed ``mask_input`` back, 0 for no mask prompt.

    Forward outputs:
        masks: ``(1, 1, H, W)`` logits of the selected mask at the original size.
        low_res_masks: ``(1, K, 4E, 4E)`` logits of every candidate the rule chooses among.
        iou_predictions: ``(1, K)``.
        low_res_mask: ``(1, 1, 4E, 4E)`` the selected candidate, the next click's ``mask_input``.
    """

    def __init__(self, model: PromptableSam, image_size: tuple[int, int]) -> None:
        super().__init__(model.sam, return_single_mask=True)
        self.click_sigma = model.click_sigma
        self.mask_rule = model.mask_rule
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.input_size = resized_shape(self.image_size, self.img_size)

    @torch.no_grad()
    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,  # type: ignore[override]
                mask_input: torch.Tensor, has_mask_input: torch.Tensor):
        sam = self.model
        pts = to_model_frame_torch(point_coords, self.image_size, self.img_size)
        # SAM's padding point, as its prompt encoder appends it when there is no box
        pts = torch.cat([pts, torch.zeros_like(pts[:, :1])], dim=1)
        labels = torch.cat([point_labels, -torch.ones_like(point_labels[:, :1])], dim=1)
        sparse = self._embed_points(pts, labels)
        if self.click_sigma is not None:  # mask_prompt: the clicks' map plus the fed-back logits
            grid = 4 * sam.prompt_encoder.image_embedding_size[0]
            dense_in = mask_prompt(pts, labels, has_mask_input.reshape(1, 1, 1, 1) * mask_input, grid, self.img_size,
                                   self.click_sigma)
            dense = sam.prompt_encoder.mask_downscaling(dense_in)
        else:  # SamOnnxModel's rule: the logits' embedding, or the learnt "no mask" one
            dense = self._embed_masks(mask_input, has_mask_input)
        low_res, iou = predict_masks_paired(sam.mask_decoder, image_embeddings, sam.prompt_encoder.get_dense_pe(), sparse, dense)
        if self.mask_rule == "single":
            low_res, iou = low_res[:, :1], iou[:, :1]
            best = low_res
        else:
            low_res, iou = low_res[:, 1:], iou[:, 1:]
            best = torch.gather(low_res, 1, iou.argmax(dim=1).reshape(1, 1, 1, 1).expand(1, 1, *low_res.shape[2:]))
        masks = sam.postprocess_masks(best, self.input_size, self.image_size)
        return masks, low_res, iou, best


def export_decoder_onnx(model: PromptableSam, path: str | os.PathLike, image_size: tuple[int, int], opset: int = 17) -> Path:
    """Write ``model``'s prompt encoder and mask decoder as an ONNX graph (see ``PromptDecoderGraph``).

    The number of points is a dynamic axis; everything else is fixed by the model and ``image_size``.

    Returns:
        the written file.

    Raises:
        InputError: ``image_size`` is not two positive integers.
    """
    if len(image_size) != 2 or min(image_size) <= 0:
        raise InputError(f"image_size must be (height, width) in pixels, got {image_size}")
    if model.fine_path is not None:
        raise InputError("this adapter draws its masks on the fine path (samocta.model.fine), which the browser decoder "
                         "does not run: click it in a live notebook, or export an adapter trained without --fine")
    graph = PromptDecoderGraph(model, image_size).eval()
    e = model.sam.prompt_encoder.image_embedding_size
    c = model.sam.prompt_encoder.embed_dim
    grid = 4 * e[0]
    example = (torch.randn(1, c, e[0], e[1]), torch.tensor([[[100.5, 120.5], [40.5, 60.5]]]), torch.tensor([[1.0, 0.0]]),
               torch.randn(1, 1, grid, grid), torch.ones(1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # segment-anything's attention divides by math.sqrt of a shape: a constant per model, as traced
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph, example, str(path), input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            dynamic_axes={"point_coords": {1: "points"}, "point_labels": {1: "points"}}, opset_version=opset,
            dynamo=False, do_constant_folding=True,
        )
    return path
