"""SAM for OCTA: building (official types and the tiny teaching SAM), LoRA, the batched forward, adapters."""

from __future__ import annotations

from samocta.model.build import MODEL_TYPES, TINY_CONFIG, CheckpointError, build_sam, checkpoint_type, load_state_dict
from samocta.model.download import download_checkpoint
from samocta.model.lora import AdapterError, LoRALinear, LoRASam
from samocta.model.promptable import MASK_RULES, Embedding, MaskOutput, PromptableSam, click_map

__all__ = [
    "MODEL_TYPES", "TINY_CONFIG", "CheckpointError", "build_sam", "checkpoint_type", "load_state_dict",
    "MASK_RULES", "Embedding", "MaskOutput", "PromptableSam", "click_map", "download_checkpoint",
    "AdapterError", "LoRALinear", "LoRASam",
]
