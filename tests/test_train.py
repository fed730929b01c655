from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from inputs import training_inputs

from samocta.train import TrainConfig, TrainingError, read_history, train_fold
from samocta.train.fold import lr_factor


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Eight small synthetic 3M subjects and random tiny-SAM weights in the official format."""
    return training_inputs(tmp_path_factory.mktemp("train"), n=8, seed=3)


def _config(setup: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(setup / "data"), task="FAZ", checkpoint=str(setup / "tiny.pth"), epochs=2, batch_size=2,
                out=str(out), device="cpu", seed=1)
    return TrainConfig(**{**base, **kw})


def _cli(setup: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "samocta", "train", "--preset", "paper", "--data", str(setup / "data"), "--task", "FAZ", "--checkpoint",
            str(setup / "tiny.pth"), "--epochs", "4", "--batch-size", "1", "--seed", "2", "--device", "cpu", "--out", str(out),
            "--quiet", *extra]


def _adapter(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _history_without_time(run: Path) -> list[dict]:
    # NaN never equals itself: a click run's clDice column is NaN by design, so it compares as a marker
    return [{k: "nan" if isinstance(v, float) and np.isnan(v) else v for k, v in row.items() if k != "seconds"}
            for row in read_history(run)]


def test_lr_schedule_warms_up_from_1e5_to_1e3_then_decays():
    cfg = TrainConfig(lr=1e-3, warmup_start_lr=1e-5, warmup_epochs=2, lr_decay=0.5, min_lr=1e-4)
    lrs = [cfg.lr * lr_factor(cfg, s, steps_per_epoch=10) for s in range(80)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[20] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:20], lrs[1:21]))  # rising during warm-up
    assert lrs[30] == pytest.approx(5e-4) and lrs[59] == pytest.approx(1.25e-4)  # halves each epoch
    assert lrs[79] == pytest.approx(1e-4)  # down to the floor


def test_end_to_end_train_evaluate_tables(setup, tmp_path):
    from samocta.evaluate import evaluate_run, paper_tables
    from samocta.metrics import METRICS

    result = train_fold(_config(setup, tmp_path / "run"), progress=False)
    run = result.run_dir
    for name in ("config.json", "split.json", "metrics.csv", "adapter_best.safetensors", "adapter_last.safetensors", "last.pt"):
        assert (run / name).exists(), name
    history = read_history(run)
    assert [r["epoch"] for r in history] == [1, 2] and all(0 <= r["val_dice"] <= 1 for r in history)
    assert result.best_val_dice == max(r["val_dice"] for r in history)
    split = json.loads((run / "split.json").read_text())
    assert split["name"] == "standard-3M" and split["train"] and split["val"] and split["test"]
    # the saved config is the run's, with what the data decided written out: its FoV and the channels "auto" meant
    saved = TrainConfig.from_json(run / "config.json")
    assert saved == dataclasses.replace(_config(setup, tmp_path / "run"), fov="3M", channels="OPL_BM,ILM_OPL,FULL")

    results = evaluate_run(run, ("none", "global", "local"), progress=False)
    assert set(results["mode"]) == {"none", "global", "local"} and len(results) == 3 * len(split["test"])
    for column in ("id", "fold", "task", "fov", "mode", "n_points", *METRICS, "data_source", "model_type", "channels",
                   "trained_on", "scored_on"):
        assert column in results.columns, column
    assert (results.loc[results["mode"] == "none", "n_points"] == 0).all()
    assert (results.loc[results["mode"] == "local", "n_points"] == 4).all()
    assert set(results["data_source"]) == {"synthetic"}
    assert (run / "results-test.csv").exists() and (run / "summary-test.csv").exists()
    table1, table2 = paper_tables(results)
    assert "this run (synthetic, tiny, channels OPL_BM, ILM_OPL, FULL)" in table1.index and table1.shape[1] == 8
    measured = table1.loc["this run (synthetic, tiny, channels OPL_BM, ILM_OPL, FULL)"]
    assert measured[("FAZ", "3M", "dice")] == pytest.approx(results.query("mode == 'global'")["dice"].mean())
    assert np.isnan(measured[("RV", "6M", "dice")])  # not measured here
    assert list(table2.columns) == ["paper 3M ×", "paper 3M ✓", "paper 6M ×", "paper 6M ✓",
                                    "measured 3M ×", "measured 3M ✓", "measured 6M ×", "measured 6M ✓"]
    assert table2.loc[("global", "FAZ", "dice"), "measured 3M ×"] == pytest.approx(results.query("mode == 'none'")["dice"].mean())

    # evaluation is deterministic: two evaluation runs (two processes, as a user would run them)
    # write the same results, byte for byte
    written = []
    for _ in range(2):
        cli = subprocess.run([sys.executable, "-m", "samocta", "evaluate", "--run", str(run), "--quiet"],
                             capture_output=True, text=True, timeout=300)
        assert cli.returncode == 0, cli.stderr[-2000:]
        written.append((run / "results-test.csv").read_bytes())
    assert written[0] == written[1]

    # an existing run is not overwritten silently, and resuming with another config is refused
    with pytest.raises(TrainingError, match="--resume"):
        train_fold(_config(setup, tmp_path / "run"), progress=False)
    with pytest.raises(TrainingError, match="other options: --lr 0.001 \\(now 0.0005\\)"):
        train_fold(_config(setup, tmp_path / "run", lr=5e-4), resume=True, progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(setup, tmp_path, monkeypatch):
    import samocta.train.losses as losses

    real = losses.loss_for_task
    calls = {"n": 0}

    def poisoned(task, **kw):
        inner = real(task, **kw)

        def loss(pred, target):
            calls["n"] += 1
            value = inner(pred, target)
            return value * float("nan") if calls["n"] > 4 else value  # epoch 1 has 3 steps of batch 2

        return loss

    monkeypatch.setattr(losses, "loss_for_task", poisoned)
    cfg = _config(setup, tmp_path / "nan", epochs=3)
    with pytest.raises(TrainingError, match=r"non-finite loss .* epoch 2.*after epoch 1\) is kept"):
        train_fold(cfg, progress=False)
    state = torch.load(Path(cfg.fold_dir()) / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert [r["epoch"] for r in read_history(cfg.fold_dir())] == [1]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [(), ("--prompt-mode", "clicks", "--session-clicks", "3", "--no-prompt-fraction", "0.3")],
                         ids=["global", "clicks"])
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(setup, tmp_path, mode):
    # Click sessions draw their clicks from the model's own masks: a resume must replay those draws exactly too.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    reference = subprocess.run(_cli(setup, tmp_path / "ref", *mode), env=env, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli(setup, run, *mode), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "standard" / "metrics.csv"
    deadline = time.time() + 300
    while not metrics.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    epoch_seconds = read_history(run / "standard")[0]["seconds"]
    time.sleep(0.5 * epoch_seconds)  # into the middle of epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(run / "standard" / "last.pt", weights_only=True)["epoch"]
    assert done < 4, "killed after the run had finished"

    resumed = subprocess.run(_cli(setup, run, *mode, "--resume"), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = _adapter(tmp_path / "ref" / "standard" / "adapter_last.safetensors"), _adapter(run / "standard" / "adapter_last.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert _history_without_time(run / "standard") == _history_without_time(tmp_path / "ref" / "standard")
    best_a = _adapter(tmp_path / "ref" / "standard" / "adapter_best.safetensors")
    best_b = _adapter(run / "standard" / "adapter_best.safetensors")
    assert all(np.array_equal(best_a[k], best_b[k]) for k in best_a)


def test_amp_and_levers_train_on_cpu(setup, tmp_path):
    cfg = _config(setup, tmp_path / "amp", epochs=1, amp="on", sdpa="on", grad_checkpointing="on", half_frozen="on")
    result = train_fold(cfg, progress=False)
    history = read_history(result.run_dir)
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    # the adapter is saved in fp32 whatever the frozen weights were stored in, and it trained
    adapter = _adapter(result.run_dir / "adapter_last.safetensors")
    assert all(v.dtype == np.float32 for v in adapter.values())
    assert any(np.abs(v).max() > 0 for k, v in adapter.items() if "lora_q_B" in k)


def test_a_finished_run_extended_by_an_epoch_equals_one_made_at_once(setup, tmp_path):
    once = train_fold(_config(setup, tmp_path / "once", epochs=2), progress=False)
    grown = tmp_path / "grown"
    train_fold(_config(setup, grown, epochs=1), progress=False)
    extended = train_fold(_config(setup, grown, epochs=2), resume=True, progress=False)
    for name in ("adapter_last.safetensors", "adapter_best.safetensors"):
        a, b = _adapter(once.run_dir / name), _adapter(extended.run_dir / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    assert _history_without_time(extended.run_dir) == _history_without_time(once.run_dir)
    assert TrainConfig.from_json(extended.run_dir / "config.json").epochs == 2
    with pytest.raises(TrainingError, match=r"--epochs 2 \(now 1; 2 epochs are done\)"):
        train_fold(_config(setup, grown, epochs=1), resume=True, progress=False)
