from __future__ import annotations

import numpy as np
import torch

from samocta.pretrain import PretrainConfig, sample_points, shapes_scene, train_step


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
    from samocta.pretrain import _batch

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
