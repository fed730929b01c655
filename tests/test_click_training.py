"""Training on simulated corrective-click sessions (``train --prompt-mode clicks``): each step of a
training session is the decode the canvas, ``predict`` and ``evaluate`` make for the same clicks; the
sessions and the run are the same bytes for a seed, also across a resume; the adapter says how its
clicks decode, and everything that decodes clicks follows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from inputs import training_inputs

from samocta.config import TrainingError
from samocta.core.options import ConfigError
from samocta.data import OCTA500
from samocta.decode import ClickSession, feeds_back, plan_resampling
from samocta.evaluate import click_curve
from samocta.model import build_model
from samocta.model.promptable import takes_logits
from samocta.predict import load_model
from samocta.train import TrainConfig, loss_for_task, read_history, train_fold, training_sessions
from samocta.train.fold import _session_loss


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return training_inputs(tmp_path_factory.mktemp("clicktrain"), n=8, seed=5, jitter=True)


def _config(setup: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(setup / "data"), task="FAZ", checkpoint=str(setup / "tiny.pth"), epochs=2, batch_size=2, out=str(out),
                device="cpu", seed=4, prompt_mode="clicks", session_clicks=4, train_decoder=True, no_prompt_fraction=0.5)
    return TrainConfig(**{**base, **kw})


def _adapter(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _same_adapters(a: Path, b: Path) -> bool:
    x, y = _adapter(a), _adapter(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("feedback", [True, False])
def test_each_step_of_a_training_session_is_the_decode_the_canvas_makes_for_those_clicks(setup, feedback):
    model = build_model(_config(setup, setup / "unused"), device="cpu").eval()
    sample = OCTA500(setup / "data", "3M").load(10301, tasks=("FAZ",))
    target = sample.labels["FAZ"]
    with torch.inference_mode():
        embedding = model.embed(sample.image[None])
        steps = training_sessions(model, embedding, target[None], [4], threshold=0.5, feedback=feedback)
        resampling = plan_resampling(target.shape, None, None)
        # the clicks evaluate's simulated user makes on the same model, decoded one by one by the canvas' session
        curve = click_curve(model, resampling, [embedding], target, max_clicks=4, start="click", feedback=feedback)
        session = ClickSession(model, resampling, [embedding], feedback=feedback, start="click")
        assert len(steps) == len(curve.clicks) >= 2
        for k, (step, click) in enumerate(zip(steps, curve.clicks), 1):
            logits = session.add(click.x, click.y, click.label)
            assert step.samples == [0] and torch.equal(step.logits, logits), f"click {k}"
    # and the feedback matters: the same clicks without it decode to other logits
    with torch.inference_mode():
        other = training_sessions(model, embedding, target[None], [4], threshold=0.5, feedback=not feedback)
    assert not torch.equal(other[1].logits, steps[1].logits)


def test_a_session_of_zero_clicks_is_the_prompt_free_decode_and_a_met_label_ends_a_session(setup):
    model = build_model(_config(setup, setup / "unused"), device="cpu").eval()
    sample = OCTA500(setup / "data", "3M").load(10302, tasks=("FAZ",))
    with torch.inference_mode():
        embedding = model.embed(np.stack([sample.image] * 2))
        steps = training_sessions(model, embedding, np.stack([sample.labels["FAZ"]] * 2), [0, 2])
        assert steps[0].samples == [0] and torch.equal(steps[0].logits, model.decode_unprompted(
            type(embedding)(embedding.features[:1], embedding.input_size, embedding.original_size)).logits)
        assert [s.samples for s in steps[1:]] == [[1], [1]]
        # an empty label is met by the empty mask a session starts from: nothing is left to click
        empty = np.zeros((2, *sample.labels["FAZ"].shape), bool)
        assert training_sessions(model, embedding, empty, [3, 3]) == []


def test_a_batch_holds_sessions_of_their_own_lengths_each_as_it_would_be_alone(setup):
    model = build_model(_config(setup, setup / "unused"), device="cpu").eval()
    index = OCTA500(setup / "data", "3M")
    subjects = [index.load(i, tasks=("FAZ",)) for i in (10301, 10302, 10303)]
    images, targets = np.stack([s.image for s in subjects]), np.stack([s.labels["FAZ"] for s in subjects])
    with torch.inference_mode():
        together = training_sessions(model, model.embed(images), targets, [3, 0, 1])
        assert [s.samples for s in together] == [[1], [0, 2], [0], [0]]
        for i, count in ((0, 3), (2, 1)):  # the same steps as the sample's session decoded on its own
            alone = training_sessions(model, model.embed(images[i:i + 1]), targets[i:i + 1], [count])
            mine = [s.logits[s.samples.index(i)] for s in together if i in s.samples]
            assert len(mine) == len(alone) and all(torch.allclose(a.logits[0], m, atol=1e-4) for a, m in zip(alone, mine))


def test_a_click_runs_validation_reads_no_subject_again(setup, monkeypatch):
    from samocta.train.fold import _validate

    config = _config(setup, setup / "unused")
    model = build_model(config, device="cpu")
    index = OCTA500(setup / "data", "3M")
    samples = {i: index.load(i, tasks=("FAZ",)) for i in (10301, 10302)}
    monkeypatch.setattr(OCTA500, "load", lambda *a, **k: pytest.fail("a validation subject was read from disk again"))
    scores = _validate(model, index, samples, config)
    assert 0 <= scores["dice"] <= 1 and 0 <= scores["jaccard"] <= scores["dice"] and np.isnan(scores["cldice"])


def test_each_sample_weighs_as_one_however_long_its_session():
    criterion = loss_for_task("FAZ", reduction="none")
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    good, bad = torch.where(target > 0, 5.0, -5.0), torch.zeros(1, 1, 8, 8)

    class Step:
        def __init__(self, samples, logits):
            self.samples, self.logits = samples, logits

    # sample 0: three decodes (one bad); sample 1: one good decode
    steps = [Step([0, 1], torch.cat([good[:1], good[1:]])), Step([0], bad), Step([0], good[:1])]
    per = [criterion(good[:1], target[:1]).item(), criterion(bad, target[:1]).item()]
    expected = ((2 * per[0] + per[1]) / 3 + per[0]) / 2
    assert _session_loss(criterion, steps, target).item() == pytest.approx(expected, rel=1e-6)


def test_a_click_run_is_the_same_bytes_for_a_seed_and_across_a_resume(setup, tmp_path):
    once = train_fold(_config(setup, tmp_path / "once"), progress=False)
    again = train_fold(_config(setup, tmp_path / "again"), progress=False)
    grown = tmp_path / "grown"
    train_fold(_config(setup, grown, epochs=1), progress=False)  # a run stopped after its first epoch ...
    resumed = train_fold(_config(setup, grown), resume=True, progress=False)  # ... and resumed from last.pt
    for name in ("adapter_last.safetensors", "adapter_best.safetensors"):
        assert _same_adapters(once.run_dir / name, again.run_dir / name), name
        assert _same_adapters(once.run_dir / name, resumed.run_dir / name), name
    history = read_history(once.run_dir)
    strip = [{k: v for k, v in r.items() if k not in ("seconds", "val_cldice")} for r in history]
    assert strip == [{k: v for k, v in r.items() if k not in ("seconds", "val_cldice")} for r in read_history(resumed.run_dir)]
    assert all(0 <= r["val_dice"] <= 1 and 0 <= r["val_dice_none"] <= 1 and np.isnan(r["val_cldice"]) for r in history)
    # another seed draws other sessions
    other = train_fold(_config(setup, tmp_path / "other", seed=5), progress=False)
    assert not _same_adapters(once.run_dir / "adapter_last.safetensors", other.run_dir / "adapter_last.safetensors")


def test_the_adapter_says_how_its_clicks_decode_and_every_decoder_of_clicks_follows(setup, tmp_path):
    clicked = train_fold(_config(setup, tmp_path / "clicks", epochs=1), progress=False)
    model = load_model(clicked.run_dir / "adapter_best.safetensors", checkpoint=str(setup / "tiny.pth"), device="cpu")
    assert model.trained_with["prompt_mode"] == "clicks" and model.trained_with["session_clicks"] == "4"
    # the tiny SAM's mask prompt is its clicks' map, not made for logits: its sessions decode from the clicks alone
    assert model.trained_with["click_feedback"] == "False" and not takes_logits(model) and not feeds_back(model)
    resampling = plan_resampling((96, 96), None, None)
    assert ClickSession(model, resampling, [None]).feedback is False
    # what the adapter records is what the canvas, predict and evaluate (all through ClickSession) do
    model.trained_with["click_feedback"] = "True"
    assert feeds_back(model) and ClickSession(model, resampling, [None]).feedback is True
    # an official SAM takes logits: its sessions feed them back
    official = build_model(_config(setup, tmp_path / "o", model="vit_b", checkpoint="random"), device="cpu")
    assert takes_logits(official) and official.trained_with["click_feedback"] == "True"


def test_session_options_are_checked_before_any_work():
    with pytest.raises(TrainingError, match="--session-clicks"):
        TrainConfig(prompt_mode="global", session_clicks=3)
    with pytest.raises(ConfigError, match="1 to 20"):
        TrainConfig(prompt_mode="clicks", session_clicks=21)
