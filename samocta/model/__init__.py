"""SAM for OCTA: building (official types and the tiny teaching SAM), LoRA, the batched forward, adapters."""

from __future__ import annotations

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
    "AdapterError", "LoRALinear", "LoRASam",
]
