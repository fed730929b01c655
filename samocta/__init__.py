"""samocta: SAM-OCTA (LoRA fine-tuning of Segment Anything for OCTA segmentation), reproduced and taught.

Modules are imported on demand so that ``import samocta`` stays cheap: ``samocta.data``,
``samocta.synth``, ``samocta.prompts``, ``samocta.losses``, ``samocta.metrics``, ``samocta.model``,
``samocta.train``, ``samocta.evaluate``, ``samocta.widgets``, ``samocta.viz``.
"""

from __future__ import annotations

__version__ = "0.1.0"
