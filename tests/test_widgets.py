from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from samocta.decode import PromptState
from samocta.reader import click_prompts


def test_prompt_state_add_remove_undo_clear_and_callbacks():
    seen = []
    state = PromptState.from_defaults([(10, 20, 1)])
    state.on_change(lambda s: seen.append(len(s.points)))
    state.add(5.5, 6.5, 0)
    state.add(30, 30, 1)
    assert state.labels == [1, 0, 1]
    assert state.remove_nearest(6, 6) == 1 and state.points == [(10.0, 20.0), (30.0, 30.0)]
    assert state.remove_nearest(100, 100, max_distance=5) is None
    state.undo()  # the removal
    assert state.points[1] == (5.5, 6.5) and state.labels[1] == 0
    state.clear()
    assert state.points == []
    state.undo()  # the clear
    assert len(state.points) == 3
    assert state.undo() and state.points == [(10.0, 20.0), (5.5, 6.5)]
    coords, labels = state.as_arrays()
    assert coords.dtype == np.float32 and coords.shape == (2, 2) and labels.tolist() == [1, 0]
    assert seen == [2, 3, 2, 3, 0, 3, 2]  # one callback per change; none for the no-op removal
    with pytest.raises(ValueError, match="label"):
        state.add(1, 1, 2)
    assert PromptState().as_arrays()[0].shape == (0, 2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from samocta.model import PromptableSam, build_sam

    torch.manual_seed(0)
    return PromptableSam(build_sam("tiny", pretrained=False))


def _mask_of(url: str) -> np.ndarray:
    """The mask a data URL sent to the canvas draws (where the overlay is opaque)."""
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))[..., 3] > 0


def test_canvas_actions_go_through_the_prompt_state_and_decode_once_each(model, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    save = tmp_path / "points.json"
    clicker = click_prompts(image, model, points=[(10.5, 10.5, 1)], save_to=save)
    assert clicker.decodes == 1 and clicker.mask.shape == (48, 64)
    assert (clicker.widget.width, clicker.widget.height) == (64, 48) and clicker.widget.image.startswith("data:image/png")
    clicker._on_message(clicker.widget, {"kind": "add", "x": 20.5, "y": 30.5, "label": 1})
    clicker._on_message(clicker.widget, {"kind": "add", "x": 40.5, "y": 5.5, "label": 0})
    assert clicker.state.labels == [1, 1, 0] and clicker.decodes == 3  # one decode per click, one embedding
    assert clicker.widget.points == [[10.5, 10.5, 1], [20.5, 30.5, 1], [40.5, 5.5, 0]]
    # the mask the canvas draws is the mask Python decoded
    assert np.array_equal(_mask_of(clicker.widget.mask), clicker.mask)
    clicker._on_message(clicker.widget, {"kind": "add", "x": 500, "y": 5, "label": 1})  # off the image
    assert len(clicker.state.points) == 3 and "ignored" in clicker.widget.status and clicker.decodes == 3
    clicker._on_message(clicker.widget, {"kind": "zoom"})  # not an action: nothing happens
    clicker.undo()
    assert len(clicker.state.points) == 2 and clicker.decodes == 4
    clicker.clear()
    assert clicker.state.points == [] and clicker.mask is None and clicker.widget.mask == ""
    assert json.loads(save.read_text()) == {"points": [], "labels": []}
    clicker.undo()
    assert json.loads(save.read_text())["labels"] == [1, 1]
    assert "decoded in Python by the kernel" in clicker.widget.status


def test_without_a_model_the_canvas_takes_points_only(model):
    clicker = click_prompts(np.zeros((32, 32, 3), np.uint8), None, points=[(1, 1, 1)])
    assert clicker.mask is None and clicker.widget.status == "no model: points only"
    assert "application/vnd.jupyter.widget-view+json" in clicker._repr_mimebundle_()[0]


def test_the_rendered_page_gets_the_browser_decoder_and_the_same_front_end(model, tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    clicker = click_prompts(image, model, points=[(20.5, 20.5, 1)], browser_dir=tmp_path / "assets",
                            browser_url="../_static/samocta", name="demo")
    bundle, _ = clicker._repr_mimebundle_()
    html = bundle["text/html"]
    assert 'import { renderStatic } from "../_static/samocta/click_canvas.js"' in html
    assert (tmp_path / "assets" / "decoder.onnx").stat().st_size > 0
    features = np.fromfile(tmp_path / "assets" / "embedding-demo.bin", dtype="<f4")
    assert np.array_equal(features, clicker._embedding.features.numpy().ravel())
    config = clicker.browser
    assert config["embeddingShape"] == list(clicker._embedding.features.shape) and config["logitThreshold"] == 0.0
    assert config["points"] == [[20.5, 20.5, 1]]
    # a live front end gets the widget; only a page without a kernel falls back to the HTML
    assert "application/vnd.jupyter.widget-view+json" in bundle
