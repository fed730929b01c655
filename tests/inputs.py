"""Inputs of training tests: a small synthetic OCTA-500 tree and random tiny-SAM weights saved as the
official checkpoints are (``torch.save`` of a state dict)."""

from __future__ import annotations

from pathlib import Path

import torch

from samocta.model import build_sam
from samocta.synth import write_octa500


def training_inputs(root: Path, n: int, seed: int, size: int = 96, jitter: bool = False) -> Path:
    """``root/data`` with ``n`` synthetic 3M subjects of ``size`` px and ``root/tiny.pth``.

    Args:
        jitter: add small random values to every weight (the default initialisation leaves some
            exactly zero, which makes e.g. the decoder's three masks alike).
    """
    write_octa500(root / "data", "3M", n=n, seed=seed, size=size, progress=False)
    torch.manual_seed(0)
    sam = build_sam("tiny", pretrained=False)
    if jitter:
        with torch.no_grad():
            for p in sam.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    torch.save(sam.state_dict(), root / "tiny.pth")
    return root
