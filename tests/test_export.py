"""The browser's decoder: SAM's prompt encoder and mask decoder exported to ONNX decode what the
torch model decodes, for any number of points and either mask rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samocta.errors import InputError
from samocta.export import INPUT_NAMES, export_decoder_onnx
from samocta.model import PromptableSam, build_sam

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def embedded():
    model = PromptableSam(build_sam("tiny")).eval()
    image = (np.random.default_rng(0).random((1, 304, 304, 3)) * 255).astype(np.uint8)
    with torch.no_grad():
        return model, model.embed(image)


@pytest.mark.parametrize("rule", ["most_confident", "single"])
def test_onnx_decoder_matches_torch_on_random_prompts(embedded, tmp_path, rule):
    model, embedding = embedded
    model.mask_rule = rule
    try:
        session = ort.InferenceSession(str(export_decoder_onnx(model, tmp_path / "decoder.onnx", (304, 304))),
                                       providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(1)
        worst_low, worst_full = 0.0, 0.0
        for _ in range(20):
            n = int(rng.integers(1, 12))
            coords = (rng.random((1, n, 2)) * 304).astype(np.float32)
            labels = rng.integers(0, 2, (1, n))
            with torch.no_grad():
                expected = model.decode(embedding, coords, labels)
            masks, low, iou = session.run(None, dict(zip(INPUT_NAMES, (embedding.features.numpy(), coords,
                                                                          labels.astype(np.float32)))))
            worst_low = max(worst_low, float(np.abs(low - expected.low_res.numpy()).max()))
            worst_full = max(worst_full, float(np.abs(masks - expected.logits.numpy()).max()))
            np.testing.assert_allclose(iou, expected.iou.numpy(), atol=1e-4)
        print(f"{rule}: max abs difference, low-resolution logits {worst_low:.2e}, full-size logits {worst_full:.2e}")
        assert worst_low <= 1e-4 and worst_full <= 1e-4, (worst_low, worst_full)
    finally:
        model.mask_rule = "most_confident"


def test_export_refuses_a_size_that_is_not_one(embedded, tmp_path):
    with pytest.raises(InputError, match="image_size"):
        export_decoder_onnx(embedded[0], tmp_path / "d.onnx", (304, 0))
