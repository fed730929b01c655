"""samocta: SAM-OCTA (LoRA fine-tuning of Segment Anything for OCTA segmentation), reproduced and taught.

The folders are the pipeline's stages, each ``__init__`` its public face, imported on demand so that
``import samocta`` stays cheap: ``core`` (errors, safe files, options, runs on disk) and ``data`` below
``synth``, ``measure``, ``model``, ``prompts`` and ``metrics``; ``config`` (the run configuration) above
them; ``decode`` (one decode for every caller); ``evaluate`` and ``predict`` (which never import each
other); ``train``; ``grid`` and ``reader`` (the book's helpers); ``cli`` on top. The layers are an
import-linter contract in ``pyproject.toml``.
"""

from __future__ import annotations

__version__ = "0.1.0"
