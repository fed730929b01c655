"""Segmenting scans nobody has labelled: masks in the OCTA-500 convention, the measurements clinicians use, a
quality score and review flag per scan, and the report page."""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "scans": ("PredictError", "load_model", "predict", "predict_scans", "read_scans", "read_clicks",
              "read_measurements"),
    "quality": ("QUALITY_SCORE", "QUALITY_SIGNALS", "scan_quality", "review_flags", "calibrate"),
    "report": ("write_report",),
})
