"""The package's layers: every module imports, and the import-linter contract in ``pyproject.toml`` holds
them (``make test`` runs ``lint-imports`` on the package itself; here it is shown to bite).

The contract lists the stages top down; a module may import only from the layers below its own, lazy
imports inside functions included. Stages of one layer joined by "|" must not know each other.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import samocta

PACKAGE = Path(samocta.__file__).parent
ROOT = PACKAGE.parent
LINT = Path(sys.executable).with_name("lint-imports")


def modules() -> list[str]:
    """Every module of the package, by dotted name."""
    found = ["samocta"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="samocta."):
        found.append(info.name)
    return found


def test_every_module_imports():
    names = modules()
    assert len(names) > 60  # the walk found the package's folders, not an empty one
    # __main__ is the command line's entry point: importing it runs the command
    for name in sorted(set(names) - {"samocta.__main__"}):
        importlib.import_module(name)


def test_the_top_level_holds_what_every_stage_reads_and_the_stages():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__", "cli", "config", "metrics", "prompts"]
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    listed = {name.strip() for layer in layers for name in layer.split("|")}
    children = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert listed == children  # every module and stage has its layer (the contract is exhaustive too)


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package: the copy comes first on the path, the project's contract with it."""
    env = {"PATH": str(LINT.parent), "PYTHONPATH": str(tree), "HOME": str(tree)}
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("layers")
    shutil.copytree(PACKAGE, copy / "samocta", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.mark.skipif(not LINT.exists(), reason="import-linter is installed by requirements.txt")
@pytest.mark.parametrize("where, planted, broken", [
    # the model reading the run configuration: the import the layers were drawn to end
    ("model/lora.py", "from samocta.config import TrainConfig", "samocta.model is not allowed to import samocta.config"),
    # prediction entering evaluation, hidden inside a function: a lazy import counts
    ("predict/quality.py", "def _late():\n    from samocta.evaluate.score import evaluate", "samocta.predict is not allowed to import samocta.evaluate"),
    # decoding, which everything decodes through, reaching up to a notebook widget
    ("decode/session.py", "from samocta.reader.widgets import click_prompts", "samocta.decode is not allowed to import samocta.reader"),
    # the model reading the data (it reads the shared words in core.vocabulary instead)
    ("model/build.py", "from samocta.data.octa500 import LAYERS", "samocta.model is not allowed to import samocta.data"),
])
def test_an_import_that_runs_back_up_fails_with_import_linters_own_message(tree, where, planted, broken):
    assert _lint(tree).returncode == 0, "the package as it is keeps its contracts"
    path = tree / "samocta" / where
    kept = path.read_text()
    try:
        path.write_text(kept + "\n\n" + planted + "  # planted\n")
        done = _lint(tree)
    finally:
        path.write_text(kept)
    assert done.returncode == 1
    assert broken in done.stdout and f"samocta.{where[:-3].replace('/', '.')}" in done.stdout


# the names shared/DESIGN.md gives each stage's public face (the README's "The package, by stage" says where
# each name of the flat package went)
FACES = {
    "samocta.grid": ["plan", "run_grid", "slurm_script", "report"],
    "samocta.reader": ["setup", "show_mask", "show_points", "show_table", "click_prompts", "paper_lessons"],
    "samocta.train": ["TrainConfig", "train_fold", "read_history"],
    "samocta.evaluate": ["evaluate", "evaluate_run", "paper_tables", "predict_modes", "click_summary"],
    "samocta.predict": ["predict", "predict_scans", "scan_quality", "load_model"],
    "samocta.decode": ["decode_prompt", "ClickSession", "next_click", "scan_views", "PromptState"],
    "samocta.model": ["build_sam", "LoRASam", "export_decoder_onnx"],
    "samocta.config": ["TrainConfig"],
    "samocta.prompts": ["global_points", "local_points"],
    "samocta.metrics": ["dice"],
    "samocta.measure": ["measure"],
    "samocta.data": ["open_dataset", "OCTA500", "standard_split", "kfold_split"],
    "samocta.core": ["SamOctaError", "open_in_place"],
}


def test_each_stage_offers_its_public_names_and_only_imports_what_a_name_needs():
    code = ("import sys, importlib\n"
            f"faces = {FACES!r}\n"
            "for face, names in faces.items():\n"
            "    module = importlib.import_module(face)\n"
            "    for name in names:\n"
            "        assert callable(getattr(module, name)), (face, name)\n"
            "    assert set(names) <= set(dir(module)), face\n"
            "import samocta.grid, samocta.train, samocta.evaluate, samocta.predict, samocta.decode, samocta.reader\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # a face imports nothing heavy until a name is asked for: the command line's --help stays quick
    cold = subprocess.run([sys.executable, "-c", "import sys, samocta.train, samocta.evaluate, samocta.predict, samocta.grid, "
                           "samocta.reader, samocta.decode; print('torch' in sys.modules, 'pandas' in sys.modules)"],
                          capture_output=True, text=True, timeout=300)
    assert cold.stdout.split() == ["False", "False"], cold.stdout + cold.stderr
