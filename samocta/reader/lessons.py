"""The paper's three lessons about prompts (SAM-OCTA, Table 2), checked against a run's own scores.

1. Large vessels (RV) hardly need prompts: Dice 0.9165 without, 0.9199 with global prompts (3M).
2. The FAZ gains from global prompts: 0.9545 without, 0.9838 with.
3. Arteries and veins in local mode gain most: +0.13 (artery) and +0.06 (vein) at 3M, the largest gains.

Each lesson is decided from measured means only, with the margins below; nothing is written by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from samocta.evaluate.paper import PAPER_TABLE2

if TYPE_CHECKING:
    import pandas as pd

# "hardly": a prompt-free Dice within this of the prompted one
RV_MARGIN = 0.05
# "gains": a prompted Dice at least this far above the prompt-free one (the paper's FAZ gain is 0.029)
GAIN_MARGIN = 0.01


def _paper_gain(mode: str, task: str) -> float:
    without, with_, *_ = PAPER_TABLE2[(mode, task, "dice")]
    return with_ - without


def paper_lessons(results: "pd.DataFrame") -> "pd.DataFrame":
    """Which of the paper's lessons the scores in ``results`` reproduce.

    Args:
        results: per-subject rows of ``evaluate_run`` (``task``, ``trained_mode``, ``mode``, ``dice``),
            each model scored without prompts ("none") and in the mode it was trained in.

    Returns:
        one row per lesson: ``lesson``, ``paper`` (its figures), ``measured`` (the run's), and
        ``reproduced`` (True, False, or None where the run did not measure what the lesson needs).
    """
    import pandas as pd

    own = results[(results["mode"] == "none") | (results["mode"] == results["trained_mode"])]
    means = own.groupby(["task", "trained_mode", "mode"])["dice"].mean()

    def pair(task: str, mode: str) -> tuple[float, float] | None:
        try:
            return float(means[(task, mode, "none")]), float(means[(task, mode, mode)])
        except KeyError:
            return None

    rows = []
    rv = pair("RV", "global")
    rows.append({
        "lesson": f"large vessels hardly need prompts (prompt-free within {RV_MARGIN} of global prompts)",
        "paper": "RV 0.9165 without, 0.9199 with",
        "measured": f"RV {rv[0]:.3f} without, {rv[1]:.3f} with" if rv else "not measured",
        "reproduced": None if rv is None else bool(rv[1] - rv[0] <= RV_MARGIN),
    })
    faz = pair("FAZ", "global")
    rows.append({
        "lesson": f"the FAZ gains from global prompts (by at least {GAIN_MARGIN})",
        "paper": "FAZ 0.9545 without, 0.9838 with",
        "measured": f"FAZ {faz[0]:.3f} without, {faz[1]:.3f} with" if faz else "not measured",
        "reproduced": None if faz is None else bool(faz[1] - faz[0] >= GAIN_MARGIN),
    })
    gains = {(t, m): p[1] - p[0] for (t, m) in {(t, m) for t, m, _ in means.index} if (p := pair(t, m)) is not None}
    local = {k: v for k, v in gains.items() if k[1] == "local"}
    best_local = max(local.values()) if local else None
    others = [v for k, v in gains.items() if k[1] != "local"]
    rows.append({
        "lesson": "arteries and veins in local mode gain most from prompts",
        "paper": f"local artery +{_paper_gain('local', 'Artery'):.3f}, vein +{_paper_gain('local', 'Vein'):.3f}; "
                 f"global RV +{_paper_gain('global', 'RV'):.3f}, FAZ +{_paper_gain('global', 'FAZ'):.3f}",
        "measured": "; ".join(f"{m} {t} {g:+.3f}" for (t, m), g in sorted(gains.items())) if gains else "not measured",
        "reproduced": None if best_local is None or not others else bool(best_local >= GAIN_MARGIN and best_local > max(others)),
    })
    return pd.DataFrame(rows)
