"""The paper's protocol as independent jobs: every task x FoV x fold x trained prompt mode.

``plan`` writes ``RUNS/grid.json``: one job per (task, FoV, fold, trained mode), each with its run
folder and its full ``train`` command (local-mode jobs for arteries and veins, as the paper has
them). A job is the unit any scheduler runs:

- ``run_grid`` on one machine: one process per GPU (``CUDA_VISIBLE_DEVICES`` set) or ``workers``
  processes on the CPU; finished jobs are skipped, interrupted ones resume from their checkpoint;
- ``slurm_script``: an sbatch job array whose task ``i`` runs ``python -m samocta grid job RUNS
  --index i``; submitting it again runs only what is unfinished;
- ``run_job``: that entry point, for any other scheduler.

A job's state is read from its fold folder, never from the scheduler: finished when its history
holds every epoch of its config, interrupted when a checkpoint exists, failed when its last exit
status (``job.json``) was not 0, pending otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from samocta.core import runs
from samocta.core.errors import SamOctaError, exit_status
from samocta.core.files import UnreadableFileError, atomic_write_text, open_in_place, read_json

GRID = "grid.json"
JOB_STATUS = "job.json"  # in a job's fold folder: its last exit status
JOB_LOG = "train.log"  # in a job's fold folder: what its training printed (grid run)
LOCAL_TASKS = ("Artery", "Vein")  # the paper trains and scores these in local mode as well
# "foreign": the job's fold folder holds a run made with other options (another plan's), never counted as the job's
STATES = ("finished", "interrupted", "failed", "pending", "foreign")


class GridError(SamOctaError, ValueError):
    """A grid that cannot be planned, read or run as asked."""


@dataclass(frozen=True)
class Job:
    """One fine-tuning: a task, a FoV, a fold and the prompt mode it is trained with.

    Attributes:
        index: its place in the grid (the SLURM array index).
        id: ``<task>-<fov>-<mode>-<fold name>``.
        run_dir: the run folder (``train --out``); fold_dir: the fold folder inside it.
        args: the ``python -m samocta`` arguments that train it.
    """

    index: int
    id: str
    task: str
    fov: str
    mode: str
    fold: int
    run_dir: str
    fold_dir: str
    args: list[str]

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "samocta", *self.args]


def plan(
    out: str | os.PathLike,
    tasks: Sequence[str],
    fovs: Sequence[str],
    data: dict[str, str],
    split: str = "kfold",
    k: int = 10,
    train_args: Sequence[str] = (),
) -> list[Job]:
    """Plan the grid into ``out/grid.json`` (an existing plan is replaced; finished jobs stay finished).

    Args:
        out: the grid folder; each job's run folder is ``out/<task>-<fov>-<mode>``.
        tasks, fovs: the tasks and fields of view.
        data: the dataset root of each FoV (an OCTA-500 tree), or of one folder dataset keyed by its
            ``fov_label`` (its jobs take no ``--fov``).
        split: "kfold" (``k`` jobs per cell) or "standard" (one).
        train_args: further ``train`` options, the same for every job (``--model``, ``--epochs`` ...).

    Raises:
        GridError: an unknown task or FoV, a FoV without data, or train options ``train`` refuses.
    """
    from samocta.data import FOVS, TASKS
    from samocta.train.command import parse_train_args, train_config

    bad = [t for t in tasks if t not in TASKS] + [f for f in fovs if f not in FOVS and f not in data]
    if bad or not tasks or not fovs:
        raise GridError(f"--tasks takes some of {','.join(TASKS)} and --fovs some of {','.join(FOVS)}; got {bad or 'none'}")
    from samocta.data.octa500 import octa500_fovs

    missing = [f for f in fovs if not data.get(f)]
    if missing:
        raise GridError(f"no data for {missing}: give --data-{missing[0].lower()} (the OCTA-500 root of that FoV)")
    octa = {f: bool(octa500_fovs(data[f])) for f in fovs}
    if split not in ("kfold", "standard"):
        raise GridError(f"--split is kfold or standard, got {split!r}")
    if split == "kfold" and not 2 <= k <= 100:
        raise GridError(f"--k is the number of folds, 2 to 100; got {k}")
    reserved = {"--task", "--fov", "--data", "--out", "--split", "--k", "--fold", "--prompt-mode", "--all-folds", "--resume"}
    clash = sorted(a.split("=")[0] for a in train_args if a.split("=")[0] in reserved)
    if clash:
        raise GridError(f"{', '.join(clash)}: the grid sets these per job; use its own --tasks, --fovs, --split and --k")
    # every option checked now, as train would check it, before a single job starts
    try:
        parsed = parse_train_args(["--data", data[fovs[0]], *train_args])
    except SamOctaError:
        raise GridError(f"train does not take {' '.join(train_args)!r} (python -m samocta train --help lists its options)") from None
    train_config(parsed)
    out = Path(out)
    jobs: list[Job] = []
    folds = range(k) if split == "kfold" else [0]
    for task in tasks:
        for fov in fovs:
            for mode in ("global", "local") if task in LOCAL_TASKS else ("global",):
                run_dir = out / f"{task}-{fov}-{mode}"
                for fold in folds:
                    name = runs.fold_name(split, fold)
                    args = ["train", "--data", str(data[fov]), *(["--fov", fov] if octa[fov] else []), "--task", task, "--prompt-mode", mode,
                            "--split", split, "--k", str(k), "--fold", str(fold), "--out", str(run_dir), *train_args]
                    jobs.append(Job(len(jobs), f"{task}-{fov}-{mode}-{name}", task, fov, mode, fold, str(run_dir),
                                    str(run_dir / name), args))
    foreign = [f"{job.fold_dir} ({'; '.join(differ)})" for job in jobs if (differ := foreign_options(job))]
    if foreign:
        raise GridError(f"{out} holds runs of another plan, made with other options: {', '.join(foreign[:3])}"
                        f"{f' and {len(foreign) - 3} more' if len(foreign) > 3 else ''}. Plan into another --out, or "
                        "move those runs away")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / GRID, json.dumps({"split": split, "k": k, "jobs": [asdict(j) for j in jobs]}, indent=1) + "\n")
    return jobs


def load(out: str | os.PathLike) -> list[Job]:
    """The jobs of the grid planned in ``out``, each checked to train inside ``out`` as its plan says.

    Raises:
        GridError: no plan, an unreadable one, or a job that would train outside the grid folder or
            whose command disagrees with its folders (an edited or foreign ``grid.json``).
    """
    path = Path(out) / GRID
    try:
        raw = read_json(path, "grid plan", "plan the grid again", max_bytes=64 << 20)
        jobs = [Job(**j) for j in raw["jobs"]]
        if not all(isinstance(j.args, list) and all(isinstance(a, str) for a in j.args) for j in jobs):
            raise TypeError("a job's args are not a list of strings")
    except UnreadableFileError as exc:
        if not path.exists():
            raise GridError(f"{path} not found: plan the grid first (python -m samocta grid plan ... --out {out})") from None
        raise GridError(str(exc)) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GridError(f"{path}: unreadable grid ({str(exc)[:200]}); plan it again") from None
    root = Path(out).resolve()
    for job in jobs:
        run_dir, fold_dir = Path(job.run_dir).resolve(), Path(job.fold_dir).resolve()
        args = job.args
        out_arg = args[args.index("--out") + 1] if "--out" in args[:-1] else None
        if (root not in run_dir.parents or fold_dir.parent != run_dir or not args or args[0] != "train"
                or out_arg is None or Path(out_arg).resolve() != run_dir or job.index != jobs.index(job)):
            raise GridError(f"{path}: job {job.index} ({job.id}) would train in {job.fold_dir}, outside {root} or not as "
                            "its command says; the plan was edited or made elsewhere: plan the grid again")
    return jobs


def job_config(job: Job):
    """The ``TrainConfig`` a job's command describes."""
    from samocta.train.command import parse_train_args, train_config

    return train_config(parse_train_args(job.args[1:]))


def foreign_options(job: Job) -> list[str]:
    """The options in which the run in a job's fold folder was made otherwise than the job says
    (empty: no run there, or the job's own). The FoV and channels a job leaves to the data are
    taken as the run recorded them."""
    from dataclasses import replace

    from samocta.config import config_differences, saved_config
    from samocta.core.runs import read_history

    fold = Path(job.fold_dir)
    if not (fold / runs.CONFIG).exists():
        return []
    saved = saved_config(fold)
    config = job_config(job)
    config = replace(config, fov=config.fov or saved.fov,
                     channels=saved.channels if config.channels == "auto" else config.channels)
    done = len(read_history(fold)) if (fold / runs.HISTORY).exists() else 0
    return config_differences(saved, config, done)


def status(job: Job) -> str:
    """One of ``STATES``, read from the job's fold folder: a run there counts as the job's only if it was
    made with the job's options ("foreign" otherwise)."""
    from samocta.core.runs import read_history

    fold = Path(job.fold_dir)
    try:
        if foreign_options(job):
            return "foreign"
        if (fold / runs.HISTORY).exists() and (fold / runs.CONFIG).exists():
            if len(read_history(fold)) >= job_config(job).epochs:
                return "finished"
        record = read_json(fold / JOB_STATUS, "job record", "") if (fold / JOB_STATUS).exists() else {}
        if not isinstance(record, dict):
            raise ValueError("not a record")
    except (OSError, ValueError, SamOctaError, RecursionError):
        return "failed"
    if record.get("exit_code", 0) != 0:
        return "failed"
    return "interrupted" if (fold / runs.CHECKPOINT).exists() else "pending"


def _record(job: Job, exit_code: int, seconds: float) -> None:
    Path(job.fold_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(job.fold_dir) / JOB_STATUS,
                      json.dumps({"id": job.id, "exit_code": exit_code, "seconds": round(seconds, 1)}) + "\n")


def estimate(jobs: Sequence[Job]) -> tuple[int, float] | None:
    """The epochs the grid has left and the mean epoch time its jobs measured so far (None before
    the first epoch). Every job trains the epochs of its own command's ``--epochs``."""
    from samocta.core.runs import read_history
    from samocta.train.command import parse_train_args, train_config

    seconds, done = [], 0
    for job in jobs:
        if (Path(job.fold_dir) / runs.HISTORY).exists():
            history = read_history(job.fold_dir)
            seconds += [row["seconds"] for row in history]
            done += len(history)
    if not seconds:
        return None
    epochs = train_config(parse_train_args(jobs[0].args[1:])).epochs  # args[0] is the command's name, "train"
    return max(0, epochs * len(jobs) - done), sum(seconds) / len(seconds)


def run_job(out: str | os.PathLike, index: int) -> int:
    """Run job ``index`` of the grid in this process (the SLURM array task's entry point); a finished
    job returns at once, an interrupted one resumes. Returns the exit status."""
    from samocta.train.command import parse_train_args, run_train

    jobs = load(out)
    if not 0 <= index < len(jobs):
        raise GridError(f"--index must be 0 to {len(jobs) - 1} for the {len(jobs)} jobs of {Path(out) / GRID}, got {index}")
    job = jobs[index]
    if status(job) == "finished":
        print(f"{job.id}: finished already")
        return 0
    print(f"{job.id}: training into {job.fold_dir}", flush=True)
    t0 = time.perf_counter()
    code = exit_status(lambda: run_train(parse_train_args([*job.args[1:], "--resume"])), output="--out", resumable=True)
    _record(job, code, time.perf_counter() - t0)
    return code


def _die_with_parent() -> None:
    """In a job's process: be killed when the grid runner dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_grid(out: str | os.PathLike, gpus: Sequence[str] | None = None, workers: int = 1, progress: bool = True) -> dict[str, str]:
    """Run the grid's unfinished jobs on this machine, one process per GPU (or ``workers`` on the CPU).

    Each job's output goes to ``<fold>/train.log``. Ctrl-C (or SIGTERM) ends the running jobs and
    returns; their checkpoints, written atomically, are intact, and the next call resumes them.

    Returns:
        the state of every job afterwards, by id.
    """
    jobs = load(out)
    if not gpus and workers < 1:
        raise GridError(f"--workers must be at least 1, got {workers}")
    slots: list[str | None] = list(gpus) if gpus else [None] * workers
    todo = [j for j in jobs if status(j) != "finished"]
    if progress:
        print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} finished; running {len(todo)} on "
              + (f"GPUs {','.join(slots)}" if gpus else f"{workers} CPU worker(s)"), flush=True)
    running: dict[int, tuple[Job, subprocess.Popen, float, object]] = {}
    free = list(range(len(slots)))

    def on_term(signum, frame):  # noqa: ARG001 - SIGTERM as Ctrl-C: end the jobs, keep the checkpoints
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while todo or running:
            while todo and free:
                job, slot = todo.pop(0), free.pop(0)
                env = dict(os.environ)
                if slots[slot] is not None:
                    env["CUDA_VISIBLE_DEVICES"] = slots[slot]
                Path(job.fold_dir).mkdir(parents=True, exist_ok=True)
                log = os.fdopen(open_in_place(Path(job.fold_dir) / JOB_LOG), "a")
                process = subprocess.Popen([*job.command, "--resume", "--quiet"], env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
                running[slot] = (job, process, time.perf_counter(), log)
                if progress:
                    where = f"GPU {slots[slot]}" if slots[slot] is not None else f"worker {slot}"
                    print(f"start {job.id} on {where}", flush=True)
            for slot, (job, process, t0, log) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log.close()
                _record(job, code, time.perf_counter() - t0)
                del running[slot]
                free.append(slot)
                if progress:
                    state = "done" if code == 0 else f"failed (exit {code}; see {Path(job.fold_dir) / JOB_LOG})"
                    print(f"{state}: {job.id} in {time.perf_counter() - t0:.0f} s", flush=True)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for job, process, _, log in running.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for job, process, _, log in running.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
        print(f"interrupted: {len(running)} running job(s) stopped; their checkpoints are intact and the next "
              "'grid run' resumes them", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return {job.id: status(job) for job in jobs}


def slurm_script(
    out: str | os.PathLike,
    partition: str,
    time_limit: str,
    max_parallel: int,
    account: str | None = None,
    extra: Sequence[str] = (),
    cpus: int = 8,
    python: str | None = None,
) -> Path:
    """Write ``out/grid.sbatch``: a job array over the grid, one GPU per array task.

    Submitting it again (``sbatch``) runs only what is unfinished: a finished job's task returns at once.

    Raises:
        GridError: ``max_parallel`` or ``cpus`` below 1, a partition, time or account SLURM would not
            read as one value (a newline in one would add a line to the script), or an ``extra`` line
            that is not one ``#SBATCH`` directive.
    """
    import re
    import shlex

    jobs = load(out)
    if max_parallel < 1:
        raise GridError(f"--max-parallel must be at least 1, got {max_parallel}")
    if cpus < 1:
        raise GridError(f"--cpus must be at least 1, got {cpus}")
    # SLURM reads its directives itself (no shell), one per line: a value must be one word of what
    # SLURM accepts there, or a newline in it would become a line of the script
    for flag, value, pattern, form in (
            ("--partition", partition, r"[A-Za-z0-9_.,+-]+", "letters, digits and _.,+- (several separated by commas)"),
            ("--time", time_limit, r"[0-9]+(-[0-9]+)?(:[0-9]+){0,2}", "minutes, HH:MM:SS or D-HH:MM:SS"),
            ("--account", account, r"[A-Za-z0-9_.+-]+", "letters, digits and _.+-")):
        if value is not None and not re.fullmatch(pattern, value):
            raise GridError(f"{flag} {value!r} is not a SLURM {flag[2:]}: {form}")
    bad = [line for line in extra if not line.startswith("#SBATCH ") or any(c in line for c in "\n\r\x00")]
    if bad:
        raise GridError(f"--extra takes '#SBATCH ...' lines, one per option, got {bad[0]!r}")
    out = Path(out).resolve()
    python = python or sys.executable
    for what, text in (("the grid folder", str(out)), ("the Python path", python)):
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise GridError(f"{what} {text!r} holds control characters; SLURM cannot take it: plan the grid in another folder")
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=samocta-grid",
        f"#SBATCH --array=0-{len(jobs) - 1}%{max_parallel}",
        f"#SBATCH --partition={partition}",
        f"#SBATCH --time={time_limit}",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --output={out}/slurm/%A_%a.out",
        *([f"#SBATCH --account={account}"] if account else []),
        *extra,
        "set -euo pipefail",
        f"# {len(jobs)} jobs planned in the grid.json beside this script; each array task runs one (finished ones return at once)",
        # every value quoted for the shell: a folder named $(...) or `...` stays a name
        f'{shlex.quote(python)} -m samocta grid job {shlex.quote(str(out))} --index "$SLURM_ARRAY_TASK_ID"',
    ]
    (out / "slurm").mkdir(parents=True, exist_ok=True)
    path = out / "grid.sbatch"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
