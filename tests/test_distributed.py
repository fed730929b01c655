"""Several processes, one run: ``torchrun -m samocta train`` shares each batch among the processes
(DistributedDataParallel averages the gradients) and ends with the adapter one process makes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.inputs import training_inputs


@pytest.mark.slow
@pytest.mark.parametrize("batch, subjects", [(2, 5), (4, 7)])
def test_two_gloo_processes_train_the_adapter_one_process_trains(tmp_path, batch, subjects):
    """2 processes with half the batch each against 1 process with all of it: 1 + 1 against 2, and
    2 + 2 against 4 with 7 subjects, whose last batch of 3 is shared 2 + 1 (a wrong weighting of an
    uneven share would show there)."""
    root = training_inputs(tmp_path, n=10, seed=4)
    common = ["-m", "samocta", "train", "--preset", "paper", "--data", str(root / "data"), "--checkpoint", str(root / "tiny.pth"),
              "--epochs", "2", "--batch-size", str(batch), "--device", "cpu", "--max-train", str(subjects), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True,
                         timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *common,
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=900)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(tmp_path / "one" / "standard" / "adapter_last.safetensors")
    b = load_file(tmp_path / "two" / "standard" / "adapter_last.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-5, worst
    assert any(float(a[k].abs().max()) > 1e-3 for k in a)  # the adapters did move away from their zero start
    # only the first process wrote: one history, one line per epoch
    lines = (tmp_path / "two" / "standard" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3
    # the recorded losses agree too (each process weighs its share of the batch)
    one_loss = [float(r.split(",")[1]) for r in (tmp_path / "one" / "standard" / "metrics.csv").read_text().splitlines()[1:]]
    two_loss = [float(r.split(",")[1]) for r in lines[1:]]
    assert torch.allclose(torch.tensor(one_loss), torch.tensor(two_loss), atol=1e-5), (one_loss, two_loss)


def test_the_batch_is_shared_and_must_split_evenly(tmp_path, monkeypatch, capsys):
    from samocta.cli import main
    from samocta.train import distributed

    root = training_inputs(tmp_path, n=4, seed=5)
    monkeypatch.setattr(distributed, "init_distributed", lambda: (0, 2))
    code = main(["train", "--preset", "paper", "--data", str(root / "data"), "--checkpoint", str(root / "tiny.pth"), "--batch-size", "3",
                 "--out", str(tmp_path / "r"), "--quiet"])
    assert code == 1 and "multiple of 2" in capsys.readouterr().err


@pytest.mark.slow
def test_a_torchrun_run_resumes_and_grows_like_a_one_process_run(tmp_path):
    root = training_inputs(tmp_path, n=10, seed=4)
    common = ["-m", "samocta", "train", "--preset", "paper", "--data", str(root / "data"), "--checkpoint", str(root / "tiny.pth"),
              "--batch-size", "2", "--device", "cpu", "--max-train", "5", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    for epochs in ("1", "2"):  # one epoch, then the run extended to two from its checkpoint
        two = subprocess.run([*torchrun, *common, "--epochs", epochs, "--resume", "--out", str(tmp_path / "two")], env=env,
                             capture_output=True, text=True, timeout=900)
        assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, *common, "--epochs", "2", "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    a = load_file(tmp_path / "one" / "standard" / "adapter_last.safetensors")
    b = load_file(tmp_path / "two" / "standard" / "adapter_last.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
