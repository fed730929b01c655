"""What the book's chapters call: the setup cell, figures, the click canvas and the paper's lessons."""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "notebook": ("setup",),
    "viz": ("show_mask", "show_points", "prompt_legend", "show_table", "show_sample", "show_subjects",
            "show_improvement", "method_figure", "loss_figure"),
    "widgets": ("click_prompts",),
    "lessons": ("paper_lessons",),
})
