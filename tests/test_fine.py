"""The fine path (issue 45): SAM's selected mask corrected at the scan's own pixels, read by the mask token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inputs import training_inputs

from samocta.core.errors import InputError
from samocta.model import AdapterError, LoRASam, build_sam
from samocta.model.fine import FinePath
from samocta.train import TrainConfig, train_fold


def _model(fine: bool, img_size: int = 256, rule: str = "most_confident") -> LoRASam:
    torch.manual_seed(0)
    return LoRASam(build_sam("tiny", pretrained=False, img_size=img_size), rank=4, fine=fine, mask_rule=rule).eval()


def _images(shape=(2, 96, 80, 3), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _wake(model: LoRASam, seed: int = 1) -> None:
    """Give the path's zero-initialised last layer values, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.fine_path.refine[-1].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


POINTS = ([np.array([[20.5, 30.5]], np.float32), np.zeros((0, 2), np.float32)], [np.array([1]), np.zeros(0, np.int64)])


@pytest.mark.parametrize("rule", ["most_confident", "single"])
def test_a_model_with_the_path_starts_as_sam_exactly(rule):
    plain, fine = _model(False, rule=rule), _model(True, rule=rule)
    with torch.no_grad():
        a = plain.decode(plain.embed(_images()), *POINTS)
        b = fine.decode(fine.embed(_images()), *POINTS)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.low_res, b.low_res)
    assert fine.num_trainable() > plain.num_trainable()  # the path trains with LoRA


@pytest.mark.parametrize("img_size, shape", [(256, (1, 96, 96, 3)), (512, (2, 304, 304, 3)), (256, (1, 200, 120, 3))])
def test_the_mask_is_drawn_at_the_images_own_pixels(img_size, shape):
    model = _model(True, img_size)
    _wake(model)
    images = _images(shape)
    with torch.no_grad():
        embedding = model.embed(images)
        out = model.decode(embedding, [np.array([[10.5, 12.5]], np.float32)] * shape[0], [np.array([1])] * shape[0])
    assert embedding.fine.shape == (shape[0], FinePath(16).width, shape[1], shape[2])
    assert out.logits.shape == (shape[0], 1, shape[1], shape[2]) and torch.isfinite(out.logits).all()
    # the correction is a convolution of the scan's own pixels: a scan moved by a pixel moves it by a pixel
    moved = np.roll(images, 1, axis=2)
    with torch.no_grad():
        f0 = model.fine_path.image_features(torch.as_tensor(images).permute(0, 3, 1, 2).float())
        f1 = model.fine_path.image_features(torch.as_tensor(moved).permute(0, 3, 1, 2).float())
    assert torch.allclose(f0[..., 4:-4, 4:-5], f1[..., 4:-4, 5:-4], atol=1e-5)


def test_a_fine_model_refuses_a_decode_that_would_drop_its_correction():
    model = _model(True)
    _wake(model)
    with torch.no_grad():
        embedding = model.embed(_images((1, 96, 96, 3)))
        with pytest.raises(InputError, match="full_size=True"):  # SAM's grid alone is not this model's mask
            model.decode(embedding, [POINTS[0][0]], [POINTS[1][0]], full_size=False)
        from samocta.model.promptable import Embedding

        plain = Embedding(embedding.features, embedding.input_size, embedding.original_size)  # no stem features
        with pytest.raises(InputError, match="its own embed"):
            model.decode(plain, [POINTS[0][0]], [POINTS[1][0]])
        part = embedding.rows([0])  # a subset keeps its stem features
        assert torch.equal(part.fine, embedding.fine[[0]])


def test_the_correction_is_read_by_the_selected_mask_token_and_so_follows_the_prompt():
    model = _model(True)
    _wake(model)
    with torch.no_grad():
        embedding = model.embed(_images((1, 96, 96, 3)))
        outs = [model.decode(embedding, [np.array(p, np.float32)], [np.array([1] * len(p))]) for p in ([[20.5, 20.5]], [[70.5, 60.5]])]
        plain = _model(False)
        base = [plain.decode(plain.embed(_images((1, 96, 96, 3))), [np.array(p, np.float32)], [np.array([1] * len(p))])
                for p in ([[20.5, 20.5]], [[70.5, 60.5]])]
    corrections = [o.logits - b.logits for o, b in zip(outs, base)]
    assert all(c.abs().max() > 1e-3 for c in corrections)
    assert not torch.allclose(corrections[0], corrections[1])  # another prompt, another token, another correction


def test_the_official_types_decoder_width_takes_the_path():
    path = FinePath(256 // 8)  # vit_b, vit_l and vit_h share a 256-wide decoder
    _wake_path = torch.Generator().manual_seed(0)
    with torch.no_grad():
        path.refine[-1].weight.copy_(torch.randn(path.refine[-1].weight.shape, generator=_wake_path))
        features = path.image_features(torch.randn(2, 3, 400, 400))
        corr = path.correction(torch.randn(2, 32, 256, 256), torch.randn(2, 32), features, (1024, 1024), 1024)
    assert corr.shape == (2, 1, 400, 400)


def test_the_adapter_records_the_path_and_a_model_without_it_refuses_it(tmp_path):
    model = LoRASam(build_sam("tiny", img_size=256), rank=4, fine=True).eval()  # the shipped weights, as from_adapter
    _wake(model)
    path = tmp_path / "fine.safetensors"
    model.save_adapter(path)
    meta = LoRASam.read_adapter(path)[1]
    assert meta["fine"] == "True" and any(k.startswith("fine_path.") for k in LoRASam.read_adapter(path)[0])
    with pytest.raises(AdapterError, match="fine 'True', the fine path \\(this model: 'False'\\)"):
        _model(False).load_adapter(path)
    rebuilt = LoRASam.from_adapter(path)
    assert rebuilt.fine_path is not None
    images = _images((1, 96, 96, 3))
    with torch.no_grad():
        a = model.decode(model.embed(images), [POINTS[0][0]], [POINTS[1][0]]).logits
        b = rebuilt.eval().decode(rebuilt.embed(images), [POINTS[0][0]], [POINTS[1][0]]).logits
    assert torch.equal(a, b)
    plain = tmp_path / "plain.safetensors"
    _model(False).save_adapter(plain)
    with pytest.raises(AdapterError, match="fine 'False'"):
        _model(True).load_adapter(plain)
    from samocta.model.export import export_decoder_onnx

    with pytest.raises(InputError, match="fine path"):
        export_decoder_onnx(model, tmp_path / "d.onnx", (96, 96))


def test_a_run_with_the_path_trains_it_and_the_same_seed_gives_the_same_bytes_across_a_resume(tmp_path):
    base = training_inputs(tmp_path / "inputs", n=6, seed=4)

    def config(name: str, epochs: int) -> TrainConfig:
        return TrainConfig(data=str(base / "data"), task="RV", checkpoint=str(base / "tiny.pth"), epochs=epochs, batch_size=3,
                           fine=True, boundary_weight=1.0, device="cpu", out=str(tmp_path / name), seed=3)

    runs = [train_fold(config(name, 2), progress=False).run_dir for name in ("a", "b")]
    train_fold(config("stopped", 1), progress=False)  # a run stopped after its first epoch ...
    runs.append(train_fold(config("stopped", 2), resume=True, progress=False).run_dir)  # ... resumed from last.pt
    for name in ("adapter_last.safetensors", "adapter_best.safetensors"):
        a, b, resumed = ((run / name).read_bytes() for run in runs)
        assert a == b and a == resumed, name
    tensors = LoRASam.read_adapter(runs[0] / "adapter_last.safetensors")[0]
    assert float(tensors["fine_path.refine.3.weight"].abs().max()) > 0  # the zero start trained away
    assert "fine path" in (runs[0] / "config.json").read_text() or TrainConfig.from_json(runs[0] / "config.json").fine
