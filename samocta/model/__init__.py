"""SAM for OCTA: building (official types and the tiny teaching SAM), checkpoints, LoRA and adapters, the batched
forward, the speed settings, and the decoder exported for the browser."""

from __future__ import annotations

from typing import Any

from samocta.model.build import (
    MODEL_TYPES,
    TINY_CONFIG,
    CheckpointError,
    DeviceError,
    ModelType,
    build_sam,
    checkpoint_type,
    load_state_dict,
    resolve_checkpoint,
    resolve_device,
)
from samocta.model.download import download_checkpoint
from samocta.model.lora import AdapterError, LoRALinear, LoRASam, build_model
from samocta.model.promptable import MASK_RULES, Embedding, MaskOutput, MaskRule, PromptableSam, click_map

__all__ = [
    "MODEL_TYPES", "ModelType", "TINY_CONFIG", "CheckpointError", "DeviceError", "build_sam", "build_model",
    "checkpoint_type", "load_state_dict", "resolve_checkpoint", "resolve_device",
    "MASK_RULES", "MaskRule", "Embedding", "MaskOutput", "PromptableSam", "click_map", "download_checkpoint",
    "AdapterError", "LoRALinear", "LoRASam", "export_decoder_onnx",
]


def __getattr__(name: str) -> Any:
    # the export needs segment-anything's ONNX wrapper, and with it torchvision (a second to import)
    if name == "export_decoder_onnx":
        from samocta.model.export import export_decoder_onnx

        return export_decoder_onnx
    raise AttributeError(f"module 'samocta.model' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "export_decoder_onnx"})
