"""Scoring against labels: per-sample metrics per prompt mode, a run scored on its split or on another dataset,
simulated corrective clicks (Dice per click, NoC), and the paper's Tables 1 and 2."""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "score": ("CLICKS", "evaluate", "evaluate_run", "predict_modes"),
    "clicks": ("click_curve", "evaluate_clicks", "click_summary", "noc"),
    "paper": ("PAPER_TABLE1", "PAPER_TABLE2", "paper_tables"),
})
