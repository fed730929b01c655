"""Building SAM: the official types through segment-anything's registry, and the project's tiny SAM.

``build_sam`` returns segment-anything's own ``Sam`` module, with two attributes the rest of the
package reads: ``sam.model_type`` and ``sam.click_sigma`` (the tiny model also receives the clicks
drawn as a signed Gaussian map through SAM's dense mask-prompt input; see ``click_map``).
"""

from __future__ import annotations

import os
import typing
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from samocta.errors import SamOctaError
from samocta.files import sha256_file

ModelType = Literal["tiny", "vit_b", "vit_l", "vit_h"]
MODEL_TYPES: tuple[str, ...] = typing.get_args(ModelType)
# image-encoder width -> type, and block count -> type (the two facts a state dict gives away)
_WIDTH_TO_TYPE = {192: "tiny", 768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_DEPTH_TO_TYPE = {6: "tiny", 12: "vit_b", 24: "vit_l", 32: "vit_h"}

TINY_CONFIG = {
    "img_size": 256,
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
    "click_sigma": 6.0,  # px in the model's input frame
}
ASSETS = Path(__file__).resolve().parent.parent / "assets"
TINY_WEIGHTS = ASSETS / "sam_tiny.safetensors"
TINY_SHA256_FILE = ASSETS / "sam_tiny.sha256"


class CheckpointError(SamOctaError, ValueError):
    """A checkpoint is missing, corrupt, or made for another model type."""


def build_tiny_sam() -> torch.nn.Module:
    """The tiny SAM from segment-anything's own classes, randomly initialised (3.8 M parameters)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    c = TINY_CONFIG
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


def checkpoint_type(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The model type a SAM state dict fits, read from its shapes (None if it is no SAM checkpoint)."""
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is not None and int(pos.shape[-1]) in _WIDTH_TO_TYPE:
        return _WIDTH_TO_TYPE[int(pos.shape[-1])]
    blocks = {k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")}
    return _DEPTH_TO_TYPE.get(len(blocks))


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint: ``.safetensors``, or a ``torch.save`` state dict loaded with ``weights_only=True``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a state dict (got {type(state).__name__})")
    # checkpoints saved from DataParallel carry a "module." prefix
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_sam(model_type: str = "tiny", checkpoint: str | os.PathLike | None = None, pretrained: bool = True) -> torch.nn.Module:
    """Build a SAM and load its weights.

    Args:
        model_type: "tiny", "vit_b", "vit_l" or "vit_h".
        checkpoint: a path to a checkpoint (official ``.pth`` or ``.safetensors``), "download"
            (fetch the official file for this type into ``SAMOCTA_CACHE``, verifying its SHA-256),
            or None: the shipped pretrained weights for "tiny", random weights for the others.
        pretrained: with ``checkpoint=None`` and "tiny", False gives a random initialisation.

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
            from samocta.model.download import download_checkpoint

            checkpoint = download_checkpoint(model_type)
        # read the checkpoint before building: a wrong type is refused without allocating the model
        state = load_state_dict(checkpoint)
        fits = checkpoint_type(state)
        if fits is None:
            raise CheckpointError(f"{checkpoint}: not a SAM checkpoint (no image_encoder weights found)")
        if fits != model_type:
            raise CheckpointError(f"{checkpoint} is a {fits} checkpoint, not {model_type}: build_sam({fits!r}, ...) loads it")
    if model_type == "tiny":
        sam = build_tiny_sam()
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
    sam.click_sigma = TINY_CONFIG["click_sigma"] if model_type == "tiny" else None
    return sam.eval()


def tiny_weights_path() -> Path:
    """The shipped tiny-SAM weights, after checking their SHA-256 against the recorded one."""
    if not TINY_WEIGHTS.is_file() or not TINY_SHA256_FILE.is_file():
        raise CheckpointError(
            f"the pretrained tiny SAM is missing ({TINY_WEIGHTS}); reinstall the package, or make it with "
            "'python -m samocta pretrain-tiny'"
        )
    expected = TINY_SHA256_FILE.read_text().split()[0]
    actual = sha256_file(TINY_WEIGHTS)
    if actual != expected:
        raise CheckpointError(f"{TINY_WEIGHTS}: SHA-256 {actual} differs from the recorded {expected}; the file is damaged")
    return TINY_WEIGHTS


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
        from samocta.model.download import OFFICIAL

        name, size, _ = OFFICIAL[model_type]
        mb = f", {size / 1e6:,.0f} MB" if size else ""
        raise CheckpointError(
            f"--model {model_type} needs --checkpoint: a path to the official {name}, or 'download' to fetch it "
            f"(once{mb}, checked against its SHA-256), or 'random' for random weights on purpose"
        )
    if checkpoint == "download":
        from samocta.model.download import OFFICIAL, download_checkpoint

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


def build_model(config, device: str | torch.device | None = None):
    """The LoRA model a run configuration describes, on its device.

    Args:
        config: a ``samocta.train.TrainConfig`` (or anything with its ``model``, ``checkpoint``,
            ``rank``, ``alpha``, ``lora_dropout``, ``train_decoder``, ``mask_rule``, ``task`` and
            ``device``).
        device: default the config's.

    Returns:
        a ``LoRASam`` with the checkpoint's weights (whose SHA-256 its adapters record), the
        config's LoRA settings, mask rule and task.
    """
    from samocta.model.lora import LoRASam

    weights, sha = resolve_checkpoint(config.model, config.checkpoint)
    sam = build_sam(config.model, weights, pretrained=weights is not None)
    model = LoRASam(sam, config.rank, config.alpha, config.lora_dropout, config.train_decoder, base_sha256=sha,
                    mask_rule=config.mask_rule, task=config.task)
    model.trained_with = {"prompt_mode": config.prompt_mode, "no_prompt_fraction": str(config.no_prompt_fraction),
                          "channels": config.channels, **({"fov": config.fov} if config.fov else {})}
    return model.to(resolve_device(config.device if device is None else device))
