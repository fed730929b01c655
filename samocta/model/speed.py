"""Levers for speed and memory: activation checkpointing and SDPA attention in the image encoder,
half-precision frozen weights, mixed precision; and the one helper that applies a run's choice of them."""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.training and torch.is_grad_enabled():
        return checkpoint(self._samocta_forward, x, use_reentrant=False)
    return self._samocta_forward(x)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each encoder block's activations in the backward pass instead of storing them.

    Parameter names do not change (the blocks' own ``forward`` is wrapped), so adapters stay
    interchangeable between runs with and without it.
    """
    for block in model.sam.image_encoder.blocks:
        if not hasattr(block, "_samocta_forward"):
            block._samocta_forward = block.forward
            block.forward = types.MethodType(_checkpointed_forward, block)


def disable_checkpointing(model: torch.nn.Module) -> None:
    """Undo ``enable_checkpointing``."""
    for block in model.sam.image_encoder.blocks:
        if hasattr(block, "_samocta_forward"):
            block.forward = block._samocta_forward
            del block._samocta_forward


def _sdpa_attention(self, x: torch.Tensor) -> torch.Tensor:
    """SAM's image-encoder attention through ``scaled_dot_product_attention``.

    The decomposed relative-position bias is built from the unscaled queries exactly as
    segment-anything's ``add_decomposed_rel_pos`` does and passed as an additive mask; SDPA's
    default scale (head_dim ** -0.5) equals SAM's ``self.scale``.
    """
    import torch.nn.functional as F
    from segment_anything.modeling.image_encoder import get_rel_pos

    b, h, w, _ = x.shape
    qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, HW, C)
    bias = None
    if self.use_rel_pos:
        c = q.shape[-1]
        r_q = q.reshape(b * self.num_heads, h, w, c)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(h, h, self.rel_pos_h))
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(w, w, self.rel_pos_w))
        bias = (rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).reshape(b, self.num_heads, h * w, h * w)
        bias = bias.to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    out = out.reshape(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return self.proj(out)


def enable_sdpa(model: torch.nn.Module) -> None:
    """Route every image-encoder attention of ``model`` (a ``PromptableSam`` or ``Sam``) through SDPA."""
    sam = getattr(model, "sam", model)
    for block in sam.image_encoder.blocks:
        attn = block.attn
        if not hasattr(attn, "_samocta_eager"):
            attn._samocta_eager = attn.forward
            attn.forward = types.MethodType(_sdpa_attention, attn)


def disable_sdpa(model: torch.nn.Module) -> None:
    """Back to segment-anything's own attention."""
    sam = getattr(model, "sam", model)
    for block in sam.image_encoder.blocks:
        attn = block.attn
        if hasattr(attn, "_samocta_eager"):
            attn.forward = attn._samocta_eager
            del attn._samocta_eager


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision dtype for ``device``: bf16 on CPUs and on GPUs of compute capability 8.0
    (Ampere) and up; fp16, with a gradient scaler, below.

    ``torch.cuda.is_bf16_supported()`` is true on a T4 (7.5, Colab's free GPU) too, where bf16 is
    emulated and slow, so the capability decides.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return torch.bfloat16


def enable_half_frozen(model: torch.nn.Module, dtype: torch.dtype = torch.float16) -> int:
    """Store the image encoder's frozen weights in ``dtype``; trainable (LoRA) weights stay fp32.

    Halves the encoder's weight memory (vit_h: 2.4 -> 1.2 GiB) and, with ``dtype`` equal to the
    autocast dtype, spares autocast its per-step weight casts. The optimiser only ever sees the
    fp32 trainable tensors, so its state stays fp32 too. ``PromptableSam.embed`` then runs the
    encoder under autocast in ``dtype`` and hands fp32 embeddings to the prompt encoder and the
    mask decoder, which stay fp32 (4 M parameters; not worth the rounding).

    Returns:
        the number of bytes the cast saved.
    """
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"half-precision weights take float16 or bfloat16, got {dtype}")
    sam = getattr(model, "sam", model)
    saved = 0
    for p in sam.image_encoder.parameters():
        if not p.requires_grad and p.dtype != dtype:
            saved += p.numel() * (p.element_size() - torch.finfo(dtype).bits // 8)
            p.data = p.data.to(dtype)
    model.encoder_dtype = dtype
    return saved


def disable_half_frozen(model: torch.nn.Module) -> None:
    """Back to fp32 frozen weights (the values keep the half-precision rounding)."""
    sam = getattr(model, "sam", model)
    for p in sam.image_encoder.parameters():
        if p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()
    model.encoder_dtype = None


@dataclass(frozen=True)
class Precision:
    """The arithmetic a run uses: autocast on or off, its dtype, and whether losses are scaled.

    fp16 activations need loss scaling, whether autocast or half-precision weights put them there.
    """

    autocast: bool
    dtype: torch.dtype
    scale_loss: bool

    def context(self, device: torch.device) -> torch.autocast:
        """The autocast context for a forward pass (a no-op when autocast is off)."""
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.autocast)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(device.type, enabled=self.scale_loss)


def lever_on(value: str, device: torch.device) -> bool:
    """A speed lever's setting: "on", "off", or "auto" (on with CUDA)."""
    if value not in ("auto", "on", "off"):
        raise ValueError(f"a speed lever is 'auto', 'on' or 'off', got {value!r}")
    return value == "on" or (value == "auto" and device.type == "cuda")


def apply_speed_settings(
    model: torch.nn.Module,
    device: torch.device,
    amp: str = "auto",
    grad_checkpointing: str = "auto",
    sdpa: str = "auto",
    half_frozen: str = "auto",
    compile: bool = False,
) -> Precision:
    """Switch on the speed and memory levers a run asks for, each "auto" (on with CUDA), "on" or "off".

    Used by training and by ``samocta.train.bench``, so that a benchmark variant is exactly what a run
    with the same switches does.

    Returns:
        the ``Precision`` to run the forward pass and the optimiser step with.
    """
    dtype = autocast_dtype(device)
    use_amp, use_half = lever_on(amp, device), lever_on(half_frozen, device)
    if lever_on(grad_checkpointing, device):
        enable_checkpointing(model)
    if lever_on(sdpa, device):
        enable_sdpa(model)
    if use_half:
        enable_half_frozen(model, dtype)
    if compile:
        model.sam.image_encoder = torch.compile(model.sam.image_encoder)
    return Precision(use_amp, dtype, (use_amp or use_half) and dtype == torch.float16)
