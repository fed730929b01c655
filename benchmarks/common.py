"""Shared helpers for the benchmark scripts: one-core setup and a description of the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def single_core() -> None:
    """Pin BLAS/OpenMP pools to one thread (call before numpy/torch are imported)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def machine() -> str:
    """CPU model, cores visible, Python version."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def timeit(fn: Callable[[], object], repeat: int, warmup: int = 1) -> dict[str, float]:
    """Median, min and max wall time in seconds over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def commit() -> str:
    """The checkout's short commit hash, or "unknown" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def publish(text: str, append: bool) -> None:
    """Print a benchmark's section and, with ``append``, add it to benchmarks/RESULTS.md."""
    print(text)
    if append:
        with open(RESULTS, "a") as fh:
            fh.write(text)


def fail(script: str, message: str) -> NoReturn:
    """End a benchmark on a mistake of its caller with one line, as the package's commands do."""
    print(f"{script}: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def real_fold(script: str, run: str | os.PathLike, data: Path | None = None):
    """The fold folder of a run trained on the real copy (the standard split, with test subjects), its config
    and split; anything else ends the benchmark with one line saying what the run is instead.

    Args:
        data: the real copy the run must have been trained on (None: not checked).
    """
    from samocta.config import saved_config
    from samocta.core import runs
    from samocta.core.errors import SamOctaError
    from samocta.data import Split

    folds = runs.fold_dirs(Path(run).expanduser())
    if not folds:
        fail(script, f"no trained run at {run} (expected config.json in it or in its fold folders); train one with "
                     "benchmarks/bench_real.py")
    fold = folds[0]
    try:
        config, split = saved_config(fold), Split.from_json(fold / runs.SPLIT)
    except (SamOctaError, OSError, ValueError, KeyError, TypeError) as exc:
        fail(script, f"{fold}: not a readable run ({exc})")
    if len(folds) > 1 or config.split != "standard" or not split.test:
        fail(script, f"{run} is a {config.split} run of {len(folds)} fold(s); this benchmark scores a standard-split run "
                     "on its test subjects (bench_real.py trains one)")
    if data is not None and Path(config.data).expanduser().resolve() != data.resolve():
        fail(script, f"{run} was trained on {config.data}, not on the real copy at {data}")
    if not runs.adapter(fold, "best").is_file():
        fail(script, f"{fold} has no adapter_best.safetensors yet: let its training finish (bench_real.py resumes it)")
    return fold, config, split
