from __future__ import annotations

import torch
from safetensors import safe_open
from safetensors.torch import load

from samocta.files import safetensors_bytes, save_safetensors


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "b.weight": torch.randn(3, 5, generator=g),
        "a.bias": torch.randn(7, generator=g).half(),
        "c.index": torch.arange(4),
    }


def test_same_contents_give_the_same_bytes_whatever_the_metadata_order():
    meta = {f"key{i}": f"value {i}" for i in range(8)}
    reversed_meta = dict(reversed(list(meta.items())))
    # safetensors keeps metadata in a hash map: its own header order varies, ours does not
    outs = {safetensors_bytes(_tensors(), meta) for _ in range(20)}
    outs |= {safetensors_bytes(_tensors(), reversed_meta) for _ in range(20)}
    assert len(outs) == 1
    blob = outs.pop()
    assert int.from_bytes(blob[:8], "little") % 8 == 0  # tensor data stays 8-byte aligned
    assert safetensors_bytes({**_tensors(), "c.index": torch.arange(1, 5)}, meta) != blob


def test_written_files_read_back_with_safetensors(tmp_path):
    meta = {"model_type": "tiny", "rank": "4", "alpha": "4.0"}
    path = tmp_path / "deep" / "x.safetensors"
    save_safetensors(_tensors(), path, meta)
    assert not list(path.parent.glob(".*.tmp"))
    loaded = load(path.read_bytes())
    assert set(loaded) == set(_tensors())
    assert all(torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype for k, v in _tensors().items())
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == meta
    assert (path.stat().st_mode & 0o777) == 0o644
