"""Building SAM: the official types through segment-anything's registry, and the project's tiny SAM.

``build_sam`` returns segment-anything's own ``Sam`` module, with two attributes the rest of the
package reads: ``sam.model_type`` and ``sam.click_sigma`` (the tiny model also receives the clicks
drawn as a signed Gaussian map through SAM's dense mask-prompt input; see ``click_map``).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from samocta.core.errors import SamOctaError
from samocta.core.files import sha256_file
from samocta.model.checkpoints import (
    MODEL_TYPES,
    OFFICIAL,
    TINY_SHA256_FILE,
    CheckpointError,
    ModelType,
    checkpoint_type,
    load_state_dict,
    tiny_weights_path,
)
from samocta.model.download import download_checkpoint

__all__ = ["MODEL_TYPES", "TINY_CONFIG", "CheckpointError", "DeviceError", "ModelType", "build_sam", "build_tiny_sam", "fit_input_size",
           "checkpoint_type", "load_state_dict", "resolve_checkpoint", "resolve_device"]

TINY_CONFIG = {
    # The input side the tiny SAM runs at. Its weights were pretrained at 256 px (16 x 16 tokens, a
    # 64 x 64 mask grid); run at 512 px (32 x 32 tokens, a 128 x 128 mask grid) its positional
    # embeddings are interpolated (``fit_input_size``). The 64 grid was what held it back on vessels a
    # few pixels wide: on synthetic 3M the best any 64 x 64 logit map reaches on the large-vessel label
    # is Dice 0.87, on a 128 grid 0.99; the fine-tuned RV run went from 0.60 to 0.78 (issue 28).
    "img_size": 512,
    "pretrain_img_size": 256,
    "patch_size": 16,
    "embed_dim": 192,
    "depth": 6,
    "num_heads": 3,
    "window_size": 8,
    "global_attn_indexes": (2, 5),
    "prompt_dim": 128,
    "decoder_depth": 2,
    "decoder_mlp_dim": 512,
    "decoder_heads": 8,
    "click_sigma": 6.0,  # px in the model's input frame at the pretraining size (scaled with the input side)
}
# The input sides the tiny SAM takes: its token grid is a sixteenth of the side, cut into windows of 8
# tokens; the official types run at 1024 px. A run's options and an adapter's record follow this one rule.
INPUT_SIDES = (256, 1024)
INPUT_STEP = TINY_CONFIG["patch_size"] * TINY_CONFIG["window_size"]


def input_size_problem(model_type: str, size: int | None) -> str | None:
    """What is wrong with an input side for a model type, in words that name ``input_size`` (None: nothing).

    Args:
        model_type: one of ``MODEL_TYPES``.
        size: the input side in px, or None (the type's own).
    """
    if size is None:
        return None
    if not INPUT_SIDES[0] <= size <= INPUT_SIDES[1]:
        return f"input_size (--input-size) must be {INPUT_SIDES[0]} to {INPUT_SIDES[1]}; got {size}"
    if model_type != "tiny" and size != 1024:
        return f"input_size (--input-size) is the tiny SAM's option; {model_type} runs at 1024 px, got {size}"
    if size % INPUT_STEP:
        return (f"input_size (--input-size) must be a multiple of {INPUT_STEP} px (16 px patches, 8-token windows); "
                f"got {size}")
    return None


def build_tiny_sam(img_size: int | None = None) -> torch.nn.Module:
    """The tiny SAM from segment-anything's own classes, randomly initialised (3.8 M parameters).

    Args:
        img_size: the input side in px, a multiple of ``patch_size * window_size`` (128); default
            ``TINY_CONFIG["img_size"]``. Pretraining uses ``TINY_CONFIG["pretrain_img_size"]``.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    c = {**TINY_CONFIG, "img_size": img_size or TINY_CONFIG["img_size"]}
    if c["img_size"] % (c["patch_size"] * c["window_size"]):
        raise CheckpointError(f"the tiny SAM's input side must be a multiple of {c['patch_size'] * c['window_size']} px, "
                              f"got {c['img_size']}")
    grid = c["img_size"] // c["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=c["img_size"],
            patch_size=c["patch_size"],
            embed_dim=c["embed_dim"],
            depth=c["depth"],
            num_heads=c["num_heads"],
            mlp_ratio=4.0,
            out_chans=c["prompt_dim"],
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=c["window_size"],
            global_attn_indexes=c["global_attn_indexes"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=c["prompt_dim"],
            image_embedding_size=(grid, grid),
            input_image_size=(c["img_size"], c["img_size"]),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=c["decoder_depth"], embedding_dim=c["prompt_dim"], mlp_dim=c["decoder_mlp_dim"], num_heads=c["decoder_heads"]
            ),
            transformer_dim=c["prompt_dim"],
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )
    return sam


def fit_input_size(state: dict[str, torch.Tensor], grid: int) -> dict[str, torch.Tensor]:
    """A tiny-SAM state dict made for a ``grid`` x ``grid`` token grid (another input size than it was
    trained at): the absolute positional embedding resized bicubically, the relative-position tables
    of the global-attention blocks linearly (as segment-anything's ``get_rel_pos`` resizes them when
    they do not fit). The windowed blocks' tables depend on the window only and stay as they are.
    The same weights give the same resized weights: nothing here is random.

    Args:
        state: the state dict (``image_encoder.pos_embed`` ``(1, g, g, C)``).
        grid: the token grid side of the model to load it into (input side / patch size).
    """
    pos = state["image_encoder.pos_embed"]
    if pos.shape[1] == grid:
        return state
    out = dict(state)
    out["image_encoder.pos_embed"] = F.interpolate(pos.float().permute(0, 3, 1, 2), size=(grid, grid), mode="bicubic",
                                                   align_corners=False).permute(0, 2, 3, 1).to(pos.dtype)
    for i in TINY_CONFIG["global_attn_indexes"]:
        for axis in ("h", "w"):
            key = f"image_encoder.blocks.{i}.attn.rel_pos_{axis}"
            table = state[key]  # (2 g - 1, head dim)
            out[key] = F.interpolate(table.float().T[None], size=2 * grid - 1, mode="linear").to(table.dtype)[0].T.contiguous()
    return out


def build_sam(model_type: str = "tiny", checkpoint: str | os.PathLike | None = None, pretrained: bool = True,
              img_size: int | None = None) -> torch.nn.Module:
    """Build a SAM and load its weights.

    Args:
        model_type: "tiny", "vit_b", "vit_l" or "vit_h".
        checkpoint: a path to a checkpoint (official ``.pth`` or ``.safetensors``), "download"
            (fetch the official file for this type into ``SAMOCTA_CACHE``, verifying its SHA-256),
            or None: the shipped pretrained weights for "tiny", random weights for the others.
        pretrained: with ``checkpoint=None`` and "tiny", False gives a random initialisation.
        img_size: the tiny SAM's input side (default ``TINY_CONFIG["img_size"]``; a checkpoint made
            at another size is fitted to it, see ``fit_input_size``). The official types run at 1024.

    Returns:
        segment-anything's ``Sam`` in eval mode, float32, on the CPU, with ``model_type`` and
        ``click_sigma`` attributes.

    Raises:
        CheckpointError: unknown type, missing or unreadable file, a checkpoint of another type
            (the message names the type it fits), or a failed download.
    """
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"unknown model type {model_type!r}; expected one of {MODEL_TYPES}")
    if model_type == "tiny" and checkpoint is None and pretrained:
        checkpoint = tiny_weights_path()
    state = None
    if checkpoint is not None:
        if str(checkpoint) == "download":
            checkpoint = download_checkpoint(model_type)
        # read the checkpoint before building: a wrong type is refused without allocating the model
        state = load_state_dict(checkpoint)
        fits = checkpoint_type(state)
        if fits is None:
            raise CheckpointError(f"{checkpoint}: not a SAM checkpoint (no image_encoder weights found)")
        if fits != model_type:
            raise CheckpointError(f"{checkpoint} is a {fits} checkpoint, not {model_type}: build_sam({fits!r}, ...) loads it")
    if img_size is not None and model_type != "tiny":
        raise CheckpointError(f"{model_type} runs at its own input size (1024 px); img_size is the tiny SAM's option")
    if model_type == "tiny":
        sam = build_tiny_sam(img_size)
        if state is not None and "image_encoder.pos_embed" in state:
            state = fit_input_size(state, sam.image_encoder.pos_embed.shape[1])
    else:
        from segment_anything import sam_model_registry

        sam = sam_model_registry[model_type](checkpoint=None)
    if state is not None:
        expected = sam.state_dict()
        odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})" for k, v in state.items()
                 if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape]
        if odd or wrong:
            raise CheckpointError(f"{checkpoint}: not a {model_type} checkpoint as released: "
                                  + "; ".join(([f"entries that are no tensors: {odd[:3]}"] if odd else []) + wrong[:3]))
        missing, unexpected = sam.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{checkpoint}: does not match {model_type}'s layout "
                f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
            )
    sam.model_type = model_type
    sam.click_sigma = (TINY_CONFIG["click_sigma"] * sam.image_encoder.img_size / TINY_CONFIG["pretrain_img_size"]
                       if model_type == "tiny" else None)
    return sam.eval()


def resolve_checkpoint(model_type: str, checkpoint: str | os.PathLike | None) -> tuple[Path | None, str | None]:
    """The weights file a run uses and its SHA-256 (recorded as an adapter's base).

    Args:
        model_type: one of ``MODEL_TYPES``.
        checkpoint: a path; "download" (the official file, fetched once into ``SAMOCTA_CACHE`` and
            verified; its official SHA-256 is recorded); "random" (random weights, on purpose);
            None or "" (the shipped weights of "tiny"; refused for the official types, whose
            weights are not shipped: silently random weights would train nothing useful).

    Returns:
        ``(path, sha256)``; ``(None, None)`` for random weights.

    Raises:
        CheckpointError: an official type without a checkpoint, an unknown type, a missing file,
            or a failed download.
    """
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"unknown model type {model_type!r}; expected one of {MODEL_TYPES}")
    checkpoint = None if checkpoint in (None, "") else str(checkpoint)
    if checkpoint == "random":
        return None, None
    if checkpoint is None:
        if model_type == "tiny":
            path = tiny_weights_path()
            return path, TINY_SHA256_FILE.read_text().split()[0]
        name, size, _ = OFFICIAL[model_type]
        mb = f", {size / 1e6:,.0f} MB" if size else ""
        raise CheckpointError(
            f"--model {model_type} needs --checkpoint: a path to the official {name}, or 'download' to fetch it "
            f"(once{mb}, checked against its SHA-256), or 'random' for random weights on purpose"
        )
    if checkpoint == "download":
        if model_type not in OFFICIAL:
            raise CheckpointError(f"there is no official {model_type} checkpoint to download; the tiny SAM ships with the package")
        return download_checkpoint(model_type), OFFICIAL[model_type][2]
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path, sha256_file(path)


class DeviceError(SamOctaError, ValueError):
    """A device that does not exist here, or is not one torch knows."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" (CUDA when there is a GPU, else the CPU), "cpu", "cuda" or "cuda:N", checked against this machine."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0")
    return dev
