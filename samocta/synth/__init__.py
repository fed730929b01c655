"""Procedural synthetic OCTA in the OCTA-500 style and layout (no real data needed)."""

from __future__ import annotations

from samocta.synth.folders import FOLDER_LAYOUTS, write_folder
from samocta.synth.generator import SynthConfig, make_sample
from samocta.synth.vessels import GrowthParams
from samocta.synth.writer import ensure_synthetic, sample_seed, subject_facts, synthetic_ids, write_octa500

__all__ = ["SynthConfig", "GrowthParams", "make_sample", "write_octa500", "write_folder", "FOLDER_LAYOUTS", "ensure_synthetic",
           "synthetic_ids", "sample_seed", "subject_facts"]
