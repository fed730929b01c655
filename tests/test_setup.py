"""A chapter's setup cell: what it refuses, what it says, where it keeps the runs (Colab included),
and the install cell and notebook metadata every chapter shares."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from samocta.core.errors import SamOctaError
from samocta.core.files import sha256_file
from samocta.reader import notebook, setup
from samocta.reader.notebook import SetupError
from tests.inputs import training_inputs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return training_inputs(tmp_path_factory.mktemp("setup"), n=8, seed=3)


def test_full_mode_without_data_stops_and_names_the_parameter(tmp_path):
    with pytest.raises(SetupError, match="SAMOCTA_DATA"):
        setup("full", "", str(tmp_path / "w"), "vit_h", "", verbose=False)
    assert not (tmp_path / "w").exists()  # nothing written, no synthetic data in its place


@pytest.mark.parametrize("kwargs, name", [({"split": "folds"}, "SPLIT"), ({"fold": 10}, "FOLD"),
                                          ({"subjects": -1}, "SUBJECTS"), ({"batch": -2}, "BATCH"),
                                          ({"epochs": 0}, "EPOCHS"), ({"mode": "fast"}, "MODE")])
def test_parameters_are_checked_before_any_work(tmp_path, kwargs, name):
    args = {"mode": "smoke", "data": "", "workdir": str(tmp_path / "w"), "model": "tiny", "checkpoint": "", **kwargs}
    with pytest.raises(SetupError, match=name):
        setup(**args, verbose=False)
    assert not (tmp_path / "w").exists()


def test_setup_says_runtime_checkpoint_and_data(inputs, tmp_path, capsys):
    chapter = setup("full", str(inputs / "data"), str(tmp_path / "w"), "tiny", str(inputs / "tiny.pth"), epochs=2,
                    subjects=3, batch=2)
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out
    assert "device cpu" in out and "float32" in out
    assert "warning: full mode without a GPU" in out  # a CPU runtime in full mode is said out loud
    assert str(inputs / "tiny.pth") in out and "not an official SAM checkpoint" in out
    assert "data check: all 8 subjects read, no problems found" in out
    assert chapter.device == torch.device("cpu") and chapter.batch_size == 2
    config = chapter.train_config("run", task="FAZ")
    assert (config.max_train, config.batch_size, config.split, config.fold) == (3, 2, "standard", 0)


def test_checkpoint_line_knows_official_files_and_downloads(monkeypatch, tmp_path):
    from samocta.model.checkpoints import OFFICIAL

    monkeypatch.setenv("SAMOCTA_CACHE", str(tmp_path))
    line = notebook.checkpoint_line("vit_b", "download")
    assert "375 MB" in line and str(tmp_path) in line and "on first use" in line  # not fetched by setup
    assert not list(tmp_path.iterdir())
    assert "random vit_b weights on purpose" in notebook.checkpoint_line("vit_b", "random")
    with pytest.raises(SamOctaError, match="no official tiny checkpoint"):  # an error line, not a KeyError
        notebook.checkpoint_line("tiny", "download")
    # a file whose SHA-256 is an official one is named as that file, whatever it is called here
    from samocta.model.checkpoints import TINY_SHA256_FILE, TINY_WEIGHTS

    assert "the shipped tiny SAM" in notebook.checkpoint_line("tiny", "")
    monkeypatch.setitem(OFFICIAL, "listed", ("sam_listed.pth", None, TINY_SHA256_FILE.read_text().split()[0]))
    assert "the official sam_listed.pth" in notebook.checkpoint_line("tiny", str(TINY_WEIGHTS))


def test_a_gpu_runtime_names_the_gpu_and_fp16_on_a_t4(monkeypatch):
    props = types.SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30, major=7, minor=5)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    lines = notebook.runtime_lines(torch.device("cuda:0"), "full")
    assert "Tesla T4, 15.0 GiB, compute capability 7.5" in lines[1]
    assert "float16 autocast with loss scaling" in lines[1]
    assert not any("warning" in line for line in lines)


def _fake_colab(monkeypatch, tmp_path, mount):
    drive = types.SimpleNamespace(mount=mount)
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setattr(notebook, "COLAB_DRIVE", tmp_path / "drive")
    monkeypatch.setattr(notebook, "COLAB_ROOT", tmp_path / "content")


def test_on_colab_the_work_folder_is_on_drive(monkeypatch, tmp_path, inputs):
    mounted = []

    def mount(where):
        mounted.append(where)
        (Path(where) / "MyDrive").mkdir(parents=True)

    _fake_colab(monkeypatch, tmp_path, mount)
    chapter = setup("smoke", str(inputs / "data"), "samocta-work", "tiny", "", verbose=False)
    assert mounted == [str(tmp_path / "drive")]
    assert chapter.work == tmp_path / "drive" / "MyDrive" / "samocta-work"
    setup("smoke", str(inputs / "data"), "samocta-work", "tiny", "", verbose=False)
    assert len(mounted) == 1  # mounted once, then reused by every chapter
    # an absolute folder is the reader's choice
    assert setup("smoke", str(inputs / "data"), str(tmp_path / "mine"), "tiny", "", verbose=False).work == tmp_path / "mine"


def test_on_colab_a_declined_drive_keeps_going_with_a_warning(monkeypatch, tmp_path, inputs, capsys):
    def mount(where):
        raise ValueError("mount failed")

    _fake_colab(monkeypatch, tmp_path, mount)
    chapter = setup("smoke", str(inputs / "data"), "samocta-work", "tiny", "", verbose=False)
    assert chapter.work == tmp_path / "content" / "samocta-work"
    assert "runs are lost when the runtime is recycled" in capsys.readouterr().out


def test_a_changed_option_is_refused_naming_it_the_folder_and_the_way_out(inputs, tmp_path, capsys):
    from samocta.train import train_fold

    chapter = setup("full", str(inputs / "data"), str(tmp_path / "w"), "tiny", str(inputs / "tiny.pth"), epochs=1,
                    subjects=2, batch=2, verbose=False)
    train_fold(chapter.train_config("r", task="FAZ", max_train=2), resume=True, progress="lines")
    out = capsys.readouterr().out
    # what the run is about to do, before its first epoch; then one line per epoch with the time left
    assert out.index("training FAZ with global prompts into") < out.index("epoch 1/1:")
    assert f"SHA-256 {sha256_file(inputs / 'tiny.pth')}" in out and "device cpu (float32), batch 2" in out
    assert "2 training and 1 validation subjects" in out and "about 0 s left" in out
    grown = setup("full", str(inputs / "data"), str(tmp_path / "w"), "tiny", str(inputs / "tiny.pth"), epochs=3,
                  subjects=2, batch=2, verbose=False)
    assert grown.train_config("r", task="FAZ").epochs == 3  # more epochs extend the run
    other = setup("full", str(inputs / "data"), str(tmp_path / "w"), "tiny", str(inputs / "tiny.pth"), epochs=1,
                  seed=5, subjects=2, batch=2, verbose=False)
    with pytest.raises(SetupError) as err:
        other.train_config("r", task="FAZ")
    message = str(err.value)
    assert "--seed 0 (now 5)" in message and str(tmp_path / "w" / "runs" / "r") in message and "delete that folder" in message


def test_errors_show_in_a_notebook_as_one_line():
    assert SetupError("full mode needs the real data")._render_traceback_() == ["error: full mode needs the real data"]
    assert issubclass(SetupError, SamOctaError)


def test_notebooks_share_the_install_cell_metadata_and_repository_address():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_notebooks.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import yaml

    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"]["accelerator"] == "GPU" and nb["metadata"]["colab"]["gpuType"] == "T4"
        title, install = "".join(nb["cells"][0]["source"]), "".join(nb["cells"][2]["source"])
        assert f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/main/notebooks/{path.name}" in title
        assert f"git+{url}@main" in install and "torch" in install


def test_sync_check_finds_a_notebook_edited_alone(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import sync_notebooks
    finally:
        sys.path.pop(0)
    copy = tmp_path / "notebooks"
    copy.mkdir()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        (copy / path.name).write_text(path.read_text())
    nb = json.loads((copy / "03_finetune.ipynb").read_text())
    nb["cells"][2]["source"] = [line.replace("albumentations==2.0.8", "albumentations") for line in nb["cells"][2]["source"]]
    (copy / "03_finetune.ipynb").write_text(sync_notebooks.dump(nb))
    monkeypatch.setattr(sync_notebooks, "NOTEBOOKS", copy)
    assert sync_notebooks.main(["--check"]) == 1
    assert sync_notebooks.main([]) == 0 and sync_notebooks.main(["--check"]) == 0


def test_in_a_live_kernel_a_refused_setup_is_its_message_alone(tmp_path):
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"from samocta.reader import setup\nsetup('full', '', {str(tmp_path)!r}, 'vit_h', '')")]
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120).execute()
    (output,) = nb.cells[0].outputs
    assert output["output_type"] == "error" and output["ename"] == "SetupError"
    assert output["traceback"] == ["error: " + output["evalue"]] and "SAMOCTA_DATA" in output["evalue"]
