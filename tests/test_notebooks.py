"""Every chapter is a notebook with a title cell, a parameters cell and no committed outputs, and
the table of contents lists every notebook and page."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_six_chapters():
    assert [p.stem for p in NOTEBOOKS] == ["01_data", "02_prompts", "03_finetune", "04_evaluate", "05_interactive", "06_predict"]


def test_title_cell_parameters_cell_and_no_outputs():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), path.name
        assert cells[1]["cell_type"] == "code" and "parameters" in cells[1]["metadata"].get("tags", []), path.name
        params = "".join(cells[1]["source"])
        assert 'os.environ.get("SAMOCTA_MODE", "smoke")' in params, path.name
        for name in ("MODE", "DATA", "CHECKPOINT", "SEED", "EPOCHS", "TASK", "FOV"):
            assert f"\n{name} = " in "\n" + params, (path.name, name)
        for cell in cells:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, path.name
        assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1, path.name


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


def test_toc_lists_every_notebook_and_page():
    listed = set(_toc_files())
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").glob("*.md")}
    notebooks = {str(p.relative_to(ROOT).with_suffix("")) for p in NOTEBOOKS}
    assert pages | notebooks == listed
    for entry in listed:
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), entry
