from __future__ import annotations

import numpy as np
import torch

from samocta.model import LoRASam, PromptableSam, build_sam
from samocta.model.speed import disable_checkpointing, disable_sdpa, enable_checkpointing, enable_sdpa


def _random_tiny(seed: int = 0):
    torch.manual_seed(seed)
    sam = build_sam("tiny", pretrained=False)
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "rel_pos" in name:  # non-zero relative positions, so the bias is really tested
                p.normal_(0, 0.5)
    return sam


def test_sdpa_equals_eager_attention_float64():
    sam = _random_tiny().double()
    x = torch.randn(2, 3, 256, 256, dtype=torch.float64)
    with torch.no_grad():
        eager = sam.image_encoder(x)
        enable_sdpa(sam)
        fast = sam.image_encoder(x)
        disable_sdpa(sam)
        again = sam.image_encoder(x)
    assert (eager - fast).abs().max() < 1e-10
    assert torch.equal(eager, again)


def test_sdpa_equals_eager_float32_and_gradients_match():
    model = LoRASam(_random_tiny(), rank=4)
    with torch.no_grad():
        for layer in model.lora_layers:
            layer.lora_v_B.weight.normal_(0, 0.05)
    images = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    coords, labels = np.array([[[32.5, 32.5]]], np.float32), np.array([[1]])

    def run():
        model.zero_grad()
        out = model(images, coords, labels).logits
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in model.trainable_parameters()]

    eager_out, eager_grads = run()
    enable_sdpa(model)
    fast_out, fast_grads = run()
    disable_sdpa(model)
    assert (eager_out - fast_out).abs().max() <= 1e-4
    for a, b in zip(eager_grads, fast_grads):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


def test_activation_checkpointing_keeps_gradients_and_names():
    model = LoRASam(_random_tiny(), rank=4, train_decoder=True)
    model.train()
    names = sorted(model.adapter_state_dict())
    images = np.random.default_rng(1).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    coords = np.array([[[10.5, 10.5]], [[30.5, 20.5]]], np.float32)
    labels = np.array([[1], [1]])

    def grads():
        model.zero_grad()
        model(images, coords, labels).logits.sigmoid().mean().backward()
        # unused decoder outputs (the multimask tokens) get no gradient at all
        return [None if p.grad is None else p.grad.clone() for p in model.trainable_parameters()]

    plain = grads()
    enable_checkpointing(model)
    assert sorted(model.adapter_state_dict()) == names  # adapters stay interchangeable
    checkpointed = grads()
    disable_checkpointing(model)
    assert sum(g is not None for g in plain) > 12
    for a, b in zip(plain, checkpointed):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bench_command_runs_quick_on_tiny(capsys):
    from samocta.cli import main

    assert main(["bench", "--device", "cpu", "--model", "tiny", "--quick", "--variants", "baseline,sdpa,amp", "--no-extras"]) == 0
    out = capsys.readouterr().out
    for word in ("baseline", "sdpa", "amp", "forward speed-up", "train step s"):
        assert word in out
