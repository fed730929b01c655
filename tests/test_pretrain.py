from __future__ import annotations

import numpy as np
import pytest
import torch

from samocta.train import PretrainConfig
from samocta.train.pretrain import sample_points, shapes_scene, train_step


def test_shapes_scene_and_points():
    image, masks = shapes_scene(96, np.random.default_rng(0))
    assert image.dtype == np.uint8 and image.shape == (96, 96, 3) and masks
    union = np.zeros((96, 96), int)
    for m in masks:
        union += m
        assert m.sum() >= 16
    assert union.max() == 1  # visible masks never overlap (occlusion)
    coords, labels = sample_points(masks[0], 2, 2, np.random.default_rng(1))
    r, c = (coords[:, 1] - 0.5).astype(int), (coords[:, 0] - 0.5).astype(int)
    assert masks[0][r[labels == 1], c[labels == 1]].all() and not masks[0][r[labels == 0], c[labels == 0]].any()
    again, _ = shapes_scene(96, np.random.default_rng(0))
    assert again.tobytes() == image.tobytes()


def test_a_few_pretraining_steps_lower_the_loss():
    from samocta.model import PromptableSam, build_sam
    from samocta.train.pretrain import _batch

    torch.manual_seed(0)
    cfg = PretrainConfig(images_per_step=2, prompts_per_image=2)
    model = PromptableSam(build_sam("tiny", pretrained=False))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = _batch(model.img_size, cfg, np.random.default_rng(0))
    losses = []
    for _ in range(8):  # fit one fixed batch: the loss must fall
        loss = train_step(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.slow
def test_pretrain_resumes_records_its_schedules_and_repeats_bytes(tmp_path):
    import json

    from samocta.core.files import sha256_file
    from samocta.train.pretrain import pretrain

    def cfg(steps: int) -> PretrainConfig:
        return PretrainConfig(steps=steps, images_per_step=1, prompts_per_image=1, warmup=1, eval_every=2,
                              eval_shapes=2, checkpoint_every=1, final_eval_shapes=2)

    first = pretrain(tmp_path / "a", cfg(2), progress=False)
    assert first["stages"] == [{"from_step": 0, "schedule_steps": 2}]
    assert torch.load(tmp_path / "a" / "last.pt", weights_only=True)["step"] == 2
    assert [line.split(",")[0] for line in (tmp_path / "a" / "curve.csv").read_text().splitlines()] == ["step", "2"]
    exported = sha256_file(tmp_path / "a" / "sam_tiny.safetensors")
    # the same recipe and seed give the same bytes
    pretrain(tmp_path / "b", cfg(2), progress=False)
    assert sha256_file(tmp_path / "b" / "sam_tiny.safetensors") == exported

    # a longer schedule on top of a finished run is a warm restart: allowed, warned and recorded
    with pytest.warns(UserWarning, match="cosine schedule restarts for 3 steps"):
        longer = pretrain(tmp_path / "a", cfg(3), progress=False)
    assert longer["stages"] == [{"from_step": 0, "schedule_steps": 2}, {"from_step": 2, "schedule_steps": 3}]
    assert json.loads((tmp_path / "a" / "stages.json").read_text()) == longer["stages"]
    assert torch.load(tmp_path / "a" / "last.pt", weights_only=True)["step"] == 3
    assert sha256_file(tmp_path / "a" / "sam_tiny.safetensors") != exported
