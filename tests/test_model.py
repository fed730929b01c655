from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from samocta.model import (
    AdapterError,
    CheckpointError,
    LoRALinear,
    LoRASam,
    PromptableSam,
    build_sam,
    checkpoint_type,
)
from samocta.model.download import download


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """Random tiny-SAM weights saved exactly as the official checkpoints are: torch.save(state_dict)."""
    torch.manual_seed(0)
    sam = build_sam("tiny", pretrained=False)
    with torch.no_grad():  # random, non-trivial weights everywhere (the default init leaves some zeros)
        for p in sam.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = tmp_path_factory.mktemp("ckpt") / "sam_tiny_random.pth"
    torch.save(sam.state_dict(), path)
    return path


def _inputs(b=2, size=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)
    coords = rng.uniform(0, size, (b, 3, 2)).astype(np.float32)
    labels = np.array([[1, 0, -1], [1, 1, 0]][:b])
    return images, coords, labels


def test_checkpoint_round_trip_through_the_real_path(tiny_ckpt):
    sam = build_sam("tiny", tiny_ckpt)
    saved = torch.load(tiny_ckpt, weights_only=True)
    for k, v in sam.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert sam.model_type == "tiny" and not sam.training


def test_lora_at_init_reproduces_the_plain_model(tiny_ckpt):
    images, coords, labels = _inputs()
    plain = PromptableSam(build_sam("tiny", tiny_ckpt))
    lora = LoRASam(build_sam("tiny", tiny_ckpt), rank=4)
    with torch.no_grad():
        a, b = plain(images, coords, labels), lora(images, coords, labels)
    assert a.logits.shape == (2, 1, 64, 64)
    assert (a.logits - b.logits).abs().max() <= 1e-5


def test_merge_matches_unmerged_after_training_the_adapters(tiny_ckpt):
    images, coords, labels = _inputs()
    model = LoRASam(build_sam("tiny", tiny_ckpt), rank=4, alpha=8)
    with torch.no_grad():
        for layer in model.lora_layers:
            layer.lora_q_B.weight.normal_(0, 0.05)
            layer.lora_v_B.weight.normal_(0, 0.05)
        plain = PromptableSam(build_sam("tiny", tiny_ckpt))(images, coords, labels).logits
        unmerged = model(images, coords, labels).logits
        assert (unmerged - plain).abs().max() > 1e-3  # the adapters do change the output
        model.merge()
        merged = model(images, coords, labels).logits
        assert (merged - unmerged).abs().max() <= 1e-4
        model.unmerge()
        assert (model(images, coords, labels).logits - unmerged).abs().max() <= 1e-5


def test_lora_linear_details():
    base = torch.nn.Linear(8, 24)
    layer = LoRALinear(base, rank=2, alpha=4, dropout=0.0)
    assert layer.scale == 2.0 and not base.weight.requires_grad
    x = torch.randn(5, 8)
    assert torch.equal(layer(x), base(x))  # B = 0
    with torch.no_grad():
        layer.lora_q_B.weight.fill_(0.1)
    delta = layer(x) - base(x)
    assert delta[:, :8].abs().sum() > 0 and torch.equal(delta[:, 8:16], torch.zeros(5, 8)) and delta[:, 16:].abs().sum() == 0
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(torch.nn.Linear(8, 24), rank=0)
    with pytest.raises(ValueError, match="fused qkv"):
        LoRALinear(torch.nn.Linear(8, 8))
    # made where the base is (a model already moved to a GPU), in fp32 whatever the base's dtype
    on_meta = LoRALinear(torch.nn.Linear(8, 24, device="meta", dtype=torch.float16))
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert on_meta.lora_v_A.weight.dtype == torch.float32


def test_vit_b_counts_and_a_wrong_type_is_refused(tmp_path):
    sam = build_sam("vit_b")  # random weights
    path = tmp_path / "sam_vit_b_random.pth"
    torch.save(sam.state_dict(), path)  # the official checkpoint format
    assert checkpoint_type(torch.load(path, weights_only=True)) == "vit_b"
    with pytest.raises(CheckpointError, match=r"is a vit_b checkpoint, not vit_l"):
        build_sam("vit_l", path)
    model = LoRASam(build_sam("vit_b", path), rank=4)
    assert model.num_trainable() == 147_456  # 12 blocks x 2 x (4 x 768 + 768 x 4)
    decoder = sum(p.numel() for p in model.sam.mask_decoder.parameters())
    assert LoRASam(build_sam("tiny", pretrained=False), rank=4, train_decoder=True).num_trainable() == 6 * 2 * (4 * 192 * 2) + sum(
        p.numel() for p in build_sam("tiny", pretrained=False).mask_decoder.parameters())
    assert decoder == 4_058_340  # vit_b's mask decoder (4.06 M)


def test_bad_checkpoints_say_what_is_wrong(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        build_sam("vit_b", tmp_path / "none.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        build_sam("tiny", junk)
    torch.save({"foo": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a SAM checkpoint"):
        build_sam("tiny", tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="unknown model type"):
        build_sam("vit_x")


def test_adapter_round_trip_and_refusals(tiny_ckpt, tmp_path):
    from safetensors import safe_open

    images, coords, labels = _inputs()
    model = LoRASam(build_sam("tiny", tiny_ckpt), rank=4, base_sha256="a" * 64)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.normal_(0, 0.05)
        expected = model(images, coords, labels).logits
    path = tmp_path / "adapter.safetensors"
    model.save_adapter(path)
    with safe_open(str(path), framework="pt") as fh:
        meta, keys = fh.metadata(), list(fh.keys())
    assert meta["model_type"] == "tiny" and meta["rank"] == "4" and meta["train_decoder"] == "False"
    assert len(keys) == 4 * 6 and all("lora_" in k and not k.startswith("module.") for k in keys)
    fresh = LoRASam(build_sam("tiny", tiny_ckpt), rank=4, base_sha256="a" * 64)
    fresh.load_adapter(path)
    with torch.no_grad():
        assert torch.equal(fresh(images, coords, labels).logits, expected)
    with pytest.raises(AdapterError, match="rank 4"):
        LoRASam(build_sam("tiny", tiny_ckpt), rank=8).load_adapter(path)
    with pytest.raises(AdapterError, match="SHA-256"):
        LoRASam(build_sam("tiny", tiny_ckpt), rank=4, base_sha256="b" * 64).load_adapter(path)
    other = LoRASam(build_sam("tiny", tiny_ckpt), rank=4)
    other.model_type = "vit_b"
    with pytest.raises(AdapterError, match="made for tiny, this model is vit_b"):
        other.load_adapter(path)
    with pytest.raises(AdapterError, match="not found"):
        fresh.load_adapter(tmp_path / "missing.safetensors")


def _prompts(lengths, size, seed=0):
    rng = np.random.default_rng(seed)
    coords = [rng.uniform(0, size, (n, 2)).astype(np.float32) for n in lengths]
    labels = [rng.integers(0, 2, n) for n in lengths]
    return coords, labels


@pytest.mark.parametrize("rule", ["most_confident", "single"])
def test_each_image_decodes_with_its_own_points_whatever_its_batch_mates(tiny_ckpt, rule):
    from samocta.prompts import Prompt, collate_prompts
    from samocta.train import loss_for_task

    model = PromptableSam(build_sam("tiny", tiny_ckpt), mask_rule=rule)
    images = np.random.default_rng(1).integers(0, 256, (4, 72, 72, 3), dtype=np.uint8)
    lengths = (1, 3, 7, 12)
    coords, labels = _prompts(lengths, 72)
    with torch.no_grad():
        emb = model.embed(images)
        batch = model.decode(emb, coords, labels)
        assert batch.logits.shape == (4, 1, 72, 72) and batch.low_res.shape[1] == (3 if rule == "most_confident" else 1)
        for i in range(4):
            alone = model(images[i : i + 1], coords[i][None], labels[i][None])
            assert (alone.logits - batch.logits[i : i + 1]).abs().max() <= 1e-5
            assert (alone.low_res - batch.low_res[i : i + 1]).abs().max() <= 1e-5
        # the padded form (label -1) is the same prompts: padding is dropped, not attended to
        padded_c, padded_l = collate_prompts([Prompt(c, l, np.zeros((72, 72), bool)) for c, l in zip(coords, labels)])
        assert torch.equal(model.decode(emb, padded_c, padded_l).logits, batch.logits)
        # the selected mask is the rule's candidate
        expected = batch.iou.argmax(1) if rule == "most_confident" else torch.zeros(4, dtype=torch.long)
        assert torch.equal(batch.selected, expected)
        low = model.decode(emb, coords, labels, full_size=False)
        for i in range(4):
            assert torch.equal(low.logits[i, 0], batch.low_res[i, batch.selected[i]])
        none = model.decode(emb, [np.zeros((0, 2), np.float32)] * 4, [np.zeros(0, np.int64)] * 4)
        assert none.logits.shape == (4, 1, 72, 72) and torch.isfinite(none.logits).all()
    # the loss of a batch is the mean of each image's loss computed alone
    criterion = loss_for_task("RV")
    targets = torch.as_tensor(np.random.default_rng(2).random((4, 1, 72, 72)) > 0.7).float()
    batch_loss = criterion(model(images, coords, labels).logits, targets)
    alone = [criterion(model(images[i : i + 1], coords[i][None], labels[i][None]).logits, targets[i : i + 1]) for i in range(4)]
    assert batch_loss.item() == pytest.approx(torch.stack(alone).mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="one prompt per image"):
        model.decode(emb, coords[:1], labels[:1])
    with pytest.raises(ValueError, match="point labels"):
        model.decode(emb, coords, [np.full(n, 5) for n in lengths])


@pytest.mark.parametrize("shape", [(304, 304), (200, 320), (400, 250)])
def test_points_reach_the_prompt_encoder_where_segment_anything_puts_them(tiny_ckpt, shape):
    """The model's own torch mapping against ResizeLongestSide.apply_coords plus SAM's pixel-centre offset.

    Project points have pixel centres at i + 0.5; segment-anything's have them on integers and its
    prompt encoder adds 0.5. So the point the encoder receives, plus 0.5, must be apply_coords of
    the project point: the same continuous position scaled into the resized frame.
    """
    from segment_anything.utils.transforms import ResizeLongestSide

    model = PromptableSam(build_sam("tiny", tiny_ckpt))
    seen = []
    hook = model.sam.prompt_encoder.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs["points"][0].clone()),
                                                          with_kwargs=True)
    h, w = shape
    points = np.array([[0.5, 0.5], [w - 0.5, h - 0.5], [w / 3, h / 2], [17.5, 140.5]], np.float32)
    image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    with torch.no_grad():
        model(image, points[None], np.ones((1, 4), np.int64))
    hook.remove()
    expected = ResizeLongestSide(model.img_size).apply_coords(points.astype(np.float64), (h, w))
    assert np.abs(seen[0][0].numpy() + 0.5 - expected).max() <= 1e-4


# ----------------------------------------------------------------------------- download


class _Server:
    """A local HTTP server for one file, with Range support and an optional cut after N bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload, self.cut_after, self.ranges = payload, None, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                start = 0
                if "Range" in self.headers:
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    server.ranges.append(start)
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[: server.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # drop the connection mid-transfer
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sam_test.pth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    s = _Server(payload)
    yield s
    s.close()


def test_download_correct_file(server, tmp_path):
    sha = hashlib.sha256(server.payload).hexdigest()
    path = download(server.url, tmp_path / "c.pth", sha, progress=False)
    assert path.read_bytes() == server.payload and not (tmp_path / "c.pth.part").exists()


def test_download_wrong_checksum_deletes_the_file(server, tmp_path):
    with pytest.raises(CheckpointError, match="differs from the expected"):
        download(server.url, tmp_path / "c.pth", "0" * 64, progress=False)
    assert not (tmp_path / "c.pth").exists() and not (tmp_path / "c.pth.part").exists()


def test_interrupted_download_resumes(server, tmp_path):
    sha = hashlib.sha256(server.payload).hexdigest()
    server.cut_after = 100_000
    with pytest.raises(CheckpointError, match="resumes"):
        download(server.url, tmp_path / "c.pth", sha, progress=False, timeout=5)
    part = tmp_path / "c.pth.part"
    assert part.exists() and 0 < part.stat().st_size < len(server.payload)
    kept = part.stat().st_size
    server.cut_after = None
    path = download(server.url, tmp_path / "c.pth", sha, progress=False)
    assert server.ranges == [kept]  # the second request asked only for the rest
    assert path.read_bytes() == server.payload


def test_build_sam_download_uses_cache_and_mirror(server, tmp_path, monkeypatch):
    from samocta.model import download as dl

    sha = hashlib.sha256(server.payload).hexdigest()
    monkeypatch.setitem(dl.OFFICIAL, "vit_b", ("sam_test.pth", None, sha))
    monkeypatch.setenv("SAMOCTA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SAMOCTA_CHECKPOINT_URL", server.url.rsplit("/", 1)[0])
    path = dl.download_checkpoint("vit_b", progress=False)
    assert path == tmp_path / "cache" / "sam_test.pth" and path.read_bytes() == server.payload
    # the file is not a SAM checkpoint: build_sam says so after the download, through the same path
    with pytest.raises(CheckpointError, match="cannot read checkpoint|not a SAM checkpoint"):
        build_sam("vit_b", "download")


def test_shipped_tiny_weights_load_and_match_their_recorded_sha256(tmp_path, monkeypatch):
    from samocta.core.files import sha256_file
    from samocta.model import checkpoints as checkpoints_module
    from samocta.model.checkpoints import TINY_SHA256_FILE, TINY_WEIGHTS, tiny_weights_path

    recorded = TINY_SHA256_FILE.read_text().split()[0]
    assert sha256_file(TINY_WEIGHTS) == recorded and tiny_weights_path() == TINY_WEIGHTS
    assert TINY_WEIGHTS.stat().st_size <= 10 * 2**20  # fp16, at most 10 MB
    from safetensors.torch import load_file

    from samocta.model import TINY_CONFIG

    shipped = load_file(str(TINY_WEIGHTS))
    sam = build_sam("tiny", img_size=TINY_CONFIG["pretrain_img_size"])  # at the size it was pretrained at: as shipped
    for name, value in sam.state_dict().items():
        assert torch.equal(value, shipped[name].float()), name
    # at the size it runs at, every weight but the fitted positional ones is the shipped one
    fitted = {"image_encoder.pos_embed"} | {f"image_encoder.blocks.{i}.attn.rel_pos_{a}"
                                            for i in TINY_CONFIG["global_attn_indexes"] for a in "hw"}
    sam = build_sam("tiny")
    assert sam.image_encoder.img_size == TINY_CONFIG["img_size"] != TINY_CONFIG["pretrain_img_size"]
    for name, value in sam.state_dict().items():
        if name not in fitted:
            assert torch.equal(value, shipped[name].float()), name
    # a damaged copy is refused with both hashes named
    damaged = tmp_path / "sam_tiny.safetensors"
    data = bytearray(TINY_WEIGHTS.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(checkpoints_module, "TINY_WEIGHTS", damaged)
    with pytest.raises(CheckpointError, match="differs from the recorded"):
        build_sam("tiny")


def test_tiny_weights_fit_another_input_size():
    from samocta.model import TINY_CONFIG
    from samocta.model.build import build_tiny_sam, fit_input_size

    state = build_tiny_sam(256).state_dict()
    assert fit_input_size(state, 16) is state  # the size it was made for: untouched
    big = fit_input_size(state, 32)
    model = build_tiny_sam(512)
    assert {k: v.shape for k, v in big.items()} == {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(big)  # strict: every key and shape fits
    # a linear ramp along the relative positions stays a ramp: the table is resized, not redrawn
    key = f"image_encoder.blocks.{TINY_CONFIG['global_attn_indexes'][0]}.attn.rel_pos_h"
    ramp = dict(state, **{key: torch.linspace(-1, 1, 31)[:, None].repeat(1, 64)})
    resized = fit_input_size(ramp, 32)[key]
    assert resized.shape == (63, 64) and torch.all(resized[1:, 0] >= resized[:-1, 0])
    assert abs(resized[31, 0]) < 1e-6  # the zero offset stays in the middle
    # a constant positional embedding stays constant; the windowed blocks' tables are the window's
    const = dict(state, **{"image_encoder.pos_embed": torch.full((1, 16, 16, 192), 0.25)})
    assert torch.allclose(fit_input_size(const, 32)["image_encoder.pos_embed"], torch.tensor(0.25))
    assert torch.equal(big["image_encoder.blocks.0.attn.rel_pos_h"], state["image_encoder.blocks.0.attn.rel_pos_h"])
    with pytest.raises(CheckpointError, match="multiple of 128"):
        build_tiny_sam(300)
    with pytest.raises(CheckpointError, match="img_size is the tiny SAM's option"):
        build_sam("vit_b", img_size=512)
