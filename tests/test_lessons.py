"""The paper's lessons about prompts, decided from a run's scores."""

from __future__ import annotations

import pandas as pd

from samocta.reader import paper_lessons


def test_paper_lessons_are_decided_from_the_scores():
    def rows(task, mode, none, prompted):
        return [{"task": task, "trained_mode": mode, "mode": "none", "dice": none},
                {"task": task, "trained_mode": mode, "mode": mode, "dice": prompted}]

    agree = pd.DataFrame(rows("RV", "global", 0.76, 0.78) + rows("FAZ", "global", 0.80, 0.85) + rows("Artery", "local", 0.1, 0.6))
    assert paper_lessons(agree)["reproduced"].tolist() == [True, True, True]
    # vessels gaining most from prompts: lessons 1 and 3 fail
    contra = pd.DataFrame(rows("RV", "global", 0.43, 0.59) + rows("FAZ", "global", 0.80, 0.85) + rows("Artery", "local", 0.3, 0.41))
    assert paper_lessons(contra)["reproduced"].tolist() == [False, True, False]
    only_faz = pd.DataFrame(rows("FAZ", "global", 0.9, 0.9))
    assert paper_lessons(only_faz)["reproduced"].tolist() == [None, False, None]
