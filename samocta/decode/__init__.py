"""One decode for every caller: a scan brought to the model's pixel size in views, the ways of prompting it, and
clicks one after another.

Evaluation, prediction, its quality check, training's validation and click sessions, and the click canvas all
decode through here, so each sees a scan and its prompts alike.
"""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "resample": ("Resampling", "TrainedFrame", "plan_resampling", "frame_of"),
    "views": ("scan_views", "decode_points"),
    "modes": ("EVAL_MODES", "AutoPromptFallback", "prompt_specs", "auto_prompt", "decode_auto", "decode_prompt"),
    "session": ("STARTS", "Click", "next_click", "ClickSession", "feeds_back", "PromptState"),
})
