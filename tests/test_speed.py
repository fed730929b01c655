from __future__ import annotations

import numpy as np
import pytest
import torch

from samocta.model import LoRASam, build_sam
from samocta.model.speed import (
    disable_checkpointing,
    disable_half_frozen,
    disable_sdpa,
    enable_checkpointing,
    enable_half_frozen,
    enable_sdpa,
)


def _random_tiny(seed: int = 0):
    torch.manual_seed(seed)
    sam = build_sam("tiny", pretrained=False)
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "rel_pos" in name:  # non-zero relative positions, so the bias is really tested
                p.normal_(0, 0.5)
    return sam


def _lora_tiny(part: str) -> LoRASam:
    """A tiny LoRASam whose ``part`` ("q" or "v") updates are non-zero, so LoRA really acts."""
    model = LoRASam(_random_tiny(), rank=4)
    with torch.no_grad():
        for layer in model.lora_layers:
            getattr(layer, f"lora_{part}_B").weight.normal_(0, 0.05)
    return model


def test_sdpa_equals_eager_attention_float64():
    sam = _random_tiny().double()
    n = sam.image_encoder.img_size
    x = torch.randn(2, 3, n, n, dtype=torch.float64)
    with torch.no_grad():
        eager = sam.image_encoder(x)
        enable_sdpa(sam)
        fast = sam.image_encoder(x)
        disable_sdpa(sam)
        again = sam.image_encoder(x)
    assert (eager - fast).abs().max() < 1e-10
    assert torch.equal(eager, again)


def test_sdpa_equals_eager_float32_and_gradients_match():
    model = _lora_tiny("v")
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


def test_half_frozen_weights_keep_lora_and_optimiser_in_fp32():
    model = _lora_tiny("q")
    images = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    coords, labels = np.array([[[20.5, 40.5]]], np.float32), np.array([[1]])
    with torch.no_grad():
        reference = model(images, coords, labels).logits
    frozen_bytes = sum(p.numel() * 4 for p in model.sam.image_encoder.parameters() if not p.requires_grad)

    saved = enable_half_frozen(model, torch.bfloat16)
    assert saved == frozen_bytes // 2
    encoder = dict(model.sam.image_encoder.named_parameters())
    assert all(p.dtype == torch.bfloat16 for n, p in encoder.items() if "lora_" not in n)
    assert all(p.dtype == torch.float32 for p in model.trainable_parameters())
    assert all(p.dtype == torch.float32 for p in model.sam.mask_decoder.parameters())

    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    out = model(images, coords, labels).logits
    assert out.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the masks agree, the logits to a few per cent of their range
    assert (out.detach() - reference).abs().max() < 0.05 * reference.abs().max()
    assert ((out.detach() > 0) == (reference > 0)).float().mean() > 0.99
    out.square().mean().backward()
    grads = [p.grad for p in model.trainable_parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads) and any(g.abs().max() > 0 for g in grads)
    opt.step()
    assert all(t.dtype == torch.float32 for state in opt.state.values() for t in state.values() if t.is_floating_point() and t.ndim)

    model.merge()  # merging into half-precision weights works and unmerges back
    model.unmerge()
    disable_half_frozen(model)
    assert model.encoder_dtype is None
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        enable_half_frozen(model, torch.float64)


@pytest.mark.slow
def test_bench_command_runs_quick_on_tiny(capsys):
    from samocta.cli import main

    assert main(["bench", "--device", "cpu", "--model", "tiny", "--quick", "--variants", "baseline,sdpa,amp,half_frozen", "--no-extras"]) == 0
    out = capsys.readouterr().out
    for word in ("baseline", "sdpa", "amp", "half_frozen", "forward speed-up", "train step s"):
        assert word in out


@pytest.mark.slow
def test_prepared_gpu_script_runs_on_cpu_and_writes_its_checks(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"
    cmd = [sys.executable, str(script), "--device", "cpu", "--model", "tiny", "--quick", "--variants", "baseline,all", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert [row["variant"] for row in result["rows"]] == ["baseline", "all"]
    assert set(result["checks"]) == {
        "train images/s, all / baseline", "speed target (3.0x) met", "peak memory MiB, all", "memory target (14 GB) met"
    }
    baseline, optimised = (row["train images/s"] for row in result["rows"])
    assert result["checks"]["train images/s, all / baseline"] == round(optimised / baseline, 2)
    assert "| all" in (tmp_path / "bench_gpu.md").read_text()
    if not torch.cuda.is_available():  # the default device is CUDA: without one it measures nothing and says so
        plain = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
        assert plain.returncode == 0 and "no CUDA device" in plain.stdout
        assert not (tmp_path / "none").exists()
