"""The paper's whole protocol as independent jobs: the plan, a local runner, a SLURM job array, and the grid's
report (Tables 1 and 2 with the spread over folds and subjects)."""

from __future__ import annotations

from samocta.core.faces import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "jobs": ("GRID", "STATES", "plan", "status", "estimate", "run_grid", "run_job", "slurm_script"),
    "reporting": ("report",),
})
