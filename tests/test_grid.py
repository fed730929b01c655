"""The protocol at scale on a CPU: a grid planned, run by workers, killed and run again, on SLURM's
terms, and reported. Tiny SAM, synthetic OCTA at 96 px, 3 folds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from samocta.cli import main
from samocta.grid import jobs as grid
from samocta.synth import write_octa500


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid-data")
    write_octa500(root, "3M", n=9, seed=1, size=96, progress=False)
    return root


def _plan(data: Path, out: Path, tasks: str = "FAZ,RV") -> list[grid.Job]:
    assert main(["grid", "plan", "--tasks", tasks, "--fovs", "3M", "--k", "3", "--data-3m", str(data), "--out", str(out),
                 "--epochs", "2", "--device", "cpu", "--preset", "paper"]) == 0
    return grid.load(out)


def test_plan_checks_every_option_before_any_job(data, tmp_path, capsys):
    jobs = _plan(data, tmp_path / "g", "FAZ,Artery")
    # FAZ in global mode; arteries in global and in local mode, as the paper: 3 folds each
    assert [(j.task, j.mode, j.fold) for j in jobs][:4] == [("FAZ", "global", 0), ("FAZ", "global", 1), ("FAZ", "global", 2),
                                                            ("Artery", "global", 0)]
    assert len(jobs) == 9 and sum(j.mode == "local" for j in jobs) == 3
    assert jobs[4].args[-6:] == ["--epochs", "2", "--device", "cpu", "--preset", "paper"] and jobs[4].fold_dir.endswith("Artery-3M-global/fold1")
    capsys.readouterr()
    for bad, said in ((["--epochs", "0"], "--epochs"), (["--fold", "2"], "--fold"), (["--tasks", "Retina"], "--tasks"),
                      (["--fovs", "6M"], "--data-6m"), (["--no-such-option"], "does not take"),
                      (["--fov", "6M"], "--fov: the grid sets"), (["--k", "0"], "--k")):  # not taken for --fovs
        args = ["grid", "plan", "--fovs", "3M", "--data-3m", str(data), "--out", str(tmp_path / "bad"),
                *([] if "--k" in bad else ["--k", "3"]), *bad]
        assert main(args) == 1
        assert said in capsys.readouterr().err
    assert not (tmp_path / "bad" / grid.GRID).exists()


def test_slurm_array_runs_one_job_and_a_report_leaves_the_missing_empty(data, tmp_path, capsys):
    jobs = _plan(data, tmp_path / "g", "FAZ")
    assert main(["grid", "slurm", str(tmp_path / "g"), "--partition", "gpu", "--time", "02:00:00", "--max-parallel", "2",
                 "--account", "lab", "--extra", "#SBATCH --mem=32G"]) == 0
    script = (tmp_path / "g" / "grid.sbatch").read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", script, re.M))
    assert directives["array"] == "0-2%2" and directives["gres"] == "gpu:1" and directives["partition"] == "gpu"
    assert directives["time"] == "02:00:00" and directives["account"] == "lab" and directives["mem"] == "32G"
    command = script.strip().splitlines()[-1]
    assert command.endswith(f'-m samocta grid job {(tmp_path / "g").resolve()} --index "$SLURM_ARRAY_TASK_ID"')
    # what array task 1 runs, as SLURM would run it
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1"}
    done = subprocess.run(["bash", "-c", command.replace(command.split()[0], sys.executable, 1)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [grid.status(j) for j in jobs] == ["pending", "finished", "pending"]
    again = subprocess.run(["bash", "-c", command.replace(command.split()[0], sys.executable, 1)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert "finished already" in again.stdout  # submitting again runs only what is unfinished
    capsys.readouterr()
    _plan(data, tmp_path / "g", "FAZ")  # planned again: the same jobs, now with a measured epoch time
    assert re.search(r"estimate: [\d.]+ device-hours for the 4 epochs left", capsys.readouterr().out)
    assert main(["report", str(tmp_path / "g"), "--bootstrap", "200", "--quiet"]) == 0
    per_fold = (tmp_path / "g" / "report-per-fold.csv").read_text()
    summary = (tmp_path / "g" / "report-summary.csv").read_text()
    assert "nan" not in per_fold.lower() and "nan" not in summary.lower()
    rows = pd.read_csv(tmp_path / "g" / "report-per-fold.csv")
    missing = rows[rows["job"] != "FAZ-3M-global-fold1"]
    assert set(missing["state"]) == {"pending"} and missing["dice"].isna().all()  # listed, cells empty
    assert rows.loc[rows["job"] == "FAZ-3M-global-fold1", "dice"].notna().all()
    report = (tmp_path / "g" / "report.md").read_text()
    assert "- FAZ-3M-global-fold0: pending" in report and "1 of 3 jobs finished" in report
    # its results file torn mid-row or cut at a row boundary: scored again, the same report, no "mixed channels"
    results = Path(jobs[1].fold_dir) / "results-val.csv"
    whole = results.read_text()
    for torn in (whole[: len(whole) * 2 // 3], "".join(whole.splitlines(keepends=True)[:3])):
        results.write_text(torn)
        assert main(["report", str(tmp_path / "g"), "--bootstrap", "200", "--quiet"]) == 0, capsys.readouterr().err
        assert (tmp_path / "g" / "report-per-fold.csv").read_text() == per_fold
        assert results.read_text() == whole


def test_a_slurm_script_runs_no_shell_code_from_names_or_options(data, tmp_path, capsys):
    out = tmp_path / "g $(touch PWNED) `touch PWNED2`"
    _plan(data, out, "FAZ")
    stub = tmp_path / "python-stub"  # stands for Python: prints the arguments it was given, one per line
    stub.write_text("#!/bin/bash\nprintf '%s\\n' \"$@\"\n")
    stub.chmod(0o755)
    path = grid.slurm_script(out, "gpu", "1-02:00:00", 2, account="lab", python=str(stub))
    done = subprocess.run(["bash", str(path)], cwd=tmp_path, env={**os.environ, "SLURM_ARRAY_TASK_ID": "0"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["-m", "samocta", "grid", "job", str(out.resolve()), "--index", "0"]
    assert not list(tmp_path.glob("PWNED*"))
    capsys.readouterr()
    for option, value in (("--partition", "gpu\ntouch PWNED"), ("--time", "1:00$(touch PWNED)"), ("--account", "a b"),
                          ("--extra", "#SBATCH --mem=1G\ntouch PWNED")):
        args = ["grid", "slurm", str(out), "--partition", "gpu", "--time", "10", "--max-parallel", "1", option, value]
        assert main(args) == 1
        assert option in capsys.readouterr().err
    assert not list(tmp_path.glob("PWNED*"))


def test_a_plan_never_counts_another_plans_runs_nor_trains_outside_its_folder(data, tmp_path, capsys):
    from dataclasses import replace

    from samocta.core.runs import write_history

    jobs = _plan(data, tmp_path / "g", "FAZ")
    # what another plan left in the first job's folder: a finished run made with another rank
    fold = Path(jobs[0].fold_dir)
    fold.mkdir(parents=True)
    replace(grid.job_config(jobs[0]), rank=8, fov="3M").to_json(fold / "config.json")
    write_history(fold, [{"epoch": e, "val_dice": 0.5} for e in (1, 2)])
    assert grid.status(jobs[0]) == "foreign" and grid.status(jobs[1]) == "pending"
    capsys.readouterr()
    assert main(["grid", "plan", "--tasks", "FAZ", "--fovs", "3M", "--k", "3", "--data-3m", str(data), "--out",
                 str(tmp_path / "g"), "--epochs", "2", "--device", "cpu", "--preset", "paper"]) == 1
    err = capsys.readouterr().err
    assert "another plan" in err and "--rank 8 (now 4)" in err
    # a grid.json edited to train elsewhere is refused before anything runs
    raw = json.loads((tmp_path / "g" / grid.GRID).read_text())
    raw["jobs"][1]["fold_dir"] = str(tmp_path / "elsewhere" / "fold1")
    (tmp_path / "g" / grid.GRID).write_text(json.dumps(raw))
    with pytest.raises(grid.GridError, match="outside"):
        grid.load(tmp_path / "g")
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_a_killed_grid_runs_only_what_is_unfinished_and_reports_as_an_uninterrupted_one(data, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for out in (whole, killed):
        _plan(data, out)
    cmd = [sys.executable, "-m", "samocta", "grid", "run"]
    done = subprocess.run([*cmd, str(whole), "--workers", "2"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    runner = subprocess.Popen([*cmd, str(killed), "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs = grid.load(killed)
    deadline = time.time() + 600
    while sum(grid.status(j) == "finished" for j in jobs) < 3 and time.time() < deadline:
        time.sleep(0.2)
    runner.send_signal(signal.SIGKILL)  # no chance to clean up; its jobs die with it
    runner.wait()
    time.sleep(2)
    finished = {j.id for j in jobs if grid.status(j) == "finished"}
    assert 3 <= len(finished) < len(jobs)
    stamps = {j.id: (Path(j.fold_dir) / "metrics.csv").stat().st_mtime_ns for j in jobs if j.id in finished}
    again = subprocess.run([*cmd, str(killed), "--workers", "2"], capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-2000:]
    started = set(re.findall(r"^start (\S+)", again.stdout, re.M))
    assert started == {j.id for j in jobs} - finished  # only the unfinished ran
    assert all((Path(j.fold_dir) / "metrics.csv").stat().st_mtime_ns == stamps[j.id] for j in jobs if j.id in finished)
    for out in (whole, killed):
        assert main(["report", str(out), "--bootstrap", "500", "--quiet"]) == 0
    for name in ("report-per-fold.csv", "report-summary.csv"):
        assert (whole / name).read_text() == (killed / name).read_text(), name
    assert json.loads((killed / "FAZ-3M-global" / "fold0" / grid.JOB_STATUS).read_text())["exit_code"] == 0
