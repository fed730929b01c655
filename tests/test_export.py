"""The browser's decoder: SAM's prompt encoder and mask decoder exported to ONNX decode what the
torch model decodes, for any number of points and either mask rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samocta.core.errors import InputError
from samocta.model import PromptableSam, build_sam
from samocta.model.export import INPUT_NAMES, export_decoder_onnx

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def embedded():
    model = PromptableSam(build_sam("tiny")).eval()
    image = (np.random.default_rng(0).random((1, 304, 304, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        return model, model.embed(image)


@pytest.mark.parametrize("rule,clicks_as_map", [("most_confident", True), ("single", True), ("most_confident", False)])
def test_onnx_decoder_matches_torch_on_random_prompts(embedded, tmp_path, rule, clicks_as_map):
    """With and without a fed-back mask (the previous decode's low-resolution logits); ``clicks_as_map``
    False decodes as the official SAM does (no click map: the mask prompt is the logits alone)."""
    model, embedding = embedded
    model.mask_rule = rule
    sigma = model.click_sigma
    model.click_sigma = sigma if clicks_as_map else None
    try:
        session = ort.InferenceSession(str(export_decoder_onnx(model, tmp_path / "decoder.onnx", (304, 304))),
                                       providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(1)
        grid = 4 * model.sam.prompt_encoder.image_embedding_size[0]
        worst_low, worst_full, fed = 0.0, 0.0, 0
        previous = None
        for trial in range(24):
            n = int(rng.integers(1, 12))
            coords = (rng.random((1, n, 2)) * 304).astype(np.float32)
            labels = rng.integers(0, 2, (1, n))
            mask_in = previous if trial % 2 and previous is not None else None
            with torch.no_grad():
                expected = model.decode(embedding, coords, labels, mask_input=mask_in)
            feed = (embedding.features.numpy(), coords, labels.astype(np.float32),
                    np.zeros((1, 1, grid, grid), np.float32) if mask_in is None else mask_in.numpy(),
                    np.array([0.0 if mask_in is None else 1.0], np.float32))
            masks, low, iou, selected = session.run(None, dict(zip(INPUT_NAMES, feed)))
            worst_low = max(worst_low, float(np.abs(low - expected.low_res.numpy()).max()),
                            float(np.abs(selected - expected.selected_low_res.numpy()).max()))
            worst_full = max(worst_full, float(np.abs(masks - expected.logits.numpy()).max()))
            # the masks agree wherever a logit is not within rounding of the threshold
            decided = np.abs(expected.logits.numpy()) > 1e-3
            assert np.array_equal((masks > 0)[decided], (expected.logits.numpy() > 0)[decided])
            np.testing.assert_allclose(iou, expected.iou.numpy(), atol=1e-4)
            fed += mask_in is not None
            previous = expected.selected_low_res
        print(f"{rule}: max abs difference, low-resolution logits {worst_low:.2e}, full-size logits {worst_full:.2e}")
        assert fed >= 10
        # the decoder's outputs agree to 1e-4; the full-size map is their bilinear upsampling, which on fed-back
        # logits of magnitude ~15 carries float32 rounding of ~1e-4 (measured 1.07e-4 at worst)
        assert worst_low <= 1e-4 and worst_full <= 2e-4, (worst_low, worst_full)
    finally:
        model.mask_rule = "most_confident"
        model.click_sigma = sigma


def test_the_fed_back_mask_changes_the_decode(embedded):
    """The mask prompt is not ignored: the same clicks with and without the previous logits differ."""
    model, embedding = embedded
    coords, labels = np.array([[[150.5, 150.5]]], np.float32), np.array([[1]])
    with torch.no_grad():
        first = model.decode(embedding, coords, labels)
        again = model.decode(embedding, coords, labels, mask_input=first.selected_low_res)
        assert float((again.logits - first.logits).abs().max()) > 1e-3
        with pytest.raises(InputError, match="mask_input"):
            model.decode(embedding, coords, labels, mask_input=torch.zeros(1, 1, 8, 8))


def test_export_refuses_a_size_that_is_not_one(embedded, tmp_path):
    with pytest.raises(InputError, match="image_size"):
        export_decoder_onnx(embedded[0], tmp_path / "d.onnx", (304, 0))
