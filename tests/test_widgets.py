from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backend_bases import MouseButton, MouseEvent  # noqa: E402

from samocta.widgets import PromptState, click_prompts  # noqa: E402


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


def _click(clicker, x, y, button):
    """Synthesise a mouse press at data coordinates (x, y) = imshow pixel-centre coordinates."""
    clicker.fig.canvas.draw()
    px, py = clicker.ax.transData.transform((x, y))
    event = MouseEvent("button_press_event", clicker.fig.canvas, px, py, button=button)
    clicker.fig.canvas.callbacks.process("button_press_event", event)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from samocta.model import PromptableSam, build_sam

    torch.manual_seed(0)
    return PromptableSam(build_sam("tiny", pretrained=False))


def test_clicks_change_the_state_and_decode_once_each(model, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    save = tmp_path / "points.json"
    clicker = click_prompts(image, model, points=[(10.5, 10.5, 1)], interactive=True, save_to=save, display_controls=False)
    assert clicker.decodes == 1 and clicker.mask.shape == (48, 64)
    _click(clicker, 20, 30, MouseButton.LEFT)
    _click(clicker, 40, 5, MouseButton.RIGHT)
    assert clicker.state.labels == [1, 1, 0]
    np.testing.assert_allclose(clicker.state.points[1:], [(20.5, 30.5), (40.5, 5.5)], atol=0.5)
    assert clicker.decodes == 3  # one decode per click, the embedding is reused
    _click(clicker, 500, 500, MouseButton.LEFT)  # outside the axes: ignored
    _click(clicker, 10, 10, MouseButton.MIDDLE)  # not a prompt button: ignored
    assert len(clicker.state.points) == 3 and clicker.decodes == 3
    clicker.set_negative(True)  # the toggle, for touchpads
    _click(clicker, 30, 20, MouseButton.LEFT)
    assert clicker.state.labels[-1] == 0
    clicker.undo()
    assert len(clicker.state.points) == 3 and clicker.decodes == 5
    clicker.clear()
    assert clicker.state.points == [] and json.loads(save.read_text()) == {"points": [], "labels": []}
    clicker.undo()
    assert json.loads(save.read_text())["labels"] == [1, 1, 0]
    # markers follow the state: one scatter per label kind present
    assert len(clicker._markers) == 2


def test_static_fallback_draws_default_points_and_ignores_clicks(model, capsys):
    image = np.zeros((32, 32, 3), np.uint8)
    clicker = click_prompts(image, model, points=[(16, 16, 1), (4, 4, 0)], interactive=False)
    assert "Static figure" in capsys.readouterr().out
    _click(clicker, 10, 10, MouseButton.LEFT)
    assert clicker.state.labels == [1, 0] and clicker.mask is not None and clicker.decodes == 1
    assert click_prompts(image, None, points=[(1, 1, 1)], interactive=False).mask is None
