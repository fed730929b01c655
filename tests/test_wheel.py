"""The install path of a GPU runtime: ``make wheel``'s wheel, installed by a chapter's install cell
into a fresh venv that already holds another torch, leaves that torch alone and ships the tiny SAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def install_cell() -> str:
    """The install part of the chapters' setup cell (the same in every chapter; a test checks that)."""
    source = "".join(json.loads((ROOT / "notebooks" / "01_data.ipynb").read_text())["cells"][2]["source"])
    return source.split("from samocta.reader import setup")[0]


def run_cell(python: str, pip_source: str) -> subprocess.CompletedProcess:
    code = f"PIP = {pip_source!r}\n" + install_cell()
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=1200)


def test_install_cell_failure_is_one_line_saying_what_to_do(tmp_path):
    result = run_cell(sys.executable, str(tmp_path / "samocta-0.1.0-py3-none-any.whl"))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "pip could not install" in last and "make wheel" in last and str(tmp_path) in last


@pytest.mark.slow
def test_wheel_installs_beside_another_torch_without_changing_it(tmp_path):
    subprocess.run(["make", "-C", str(ROOT), "wheel"], check=True, capture_output=True)
    wheel = next((ROOT / "dist").glob("samocta-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # torch 2.13.0 (a CPU build on this machine's disk): not the project's pinned 2.14.1
    subprocess.run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True, capture_output=True)
    probe = ("import importlib.metadata as m, hashlib; d = m.distribution('torch'); "
             "print(d.version, hashlib.sha256(d.read_text('RECORD').encode()).hexdigest())")
    before = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert before.startswith("2.13.0")
    result = run_cell(python, str(wheel))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"installed from {wheel}" in result.stdout and "samocta-0.1.0" in result.stdout
    after = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert after == before  # same version, same files
    found = subprocess.run([python, "-c", "import samocta.model.build as b; print(b.tiny_weights_path())"],
                           capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert found.returncode == 0, found.stderr[-2000:]
    assert str(venv) in found.stdout and found.stdout.strip().endswith("sam_tiny.safetensors")  # the wheel's copy, SHA checked
