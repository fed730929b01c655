"""Write what every chapter shares into the notebooks, from one source each.

- The repository address, from ``_config.yml`` (``repository.url``, ``branch``): the "Open in Colab"
  link of each chapter's title cell and the install cell's default package source.
- The notebook metadata that asks Colab for a GPU runtime.
- The common part of the parameters cell (each chapter keeps its own lines after it).
- The install and setup cell.
- The tags that keep both out of a reader's way in the rendered book: the parameters cell is
  collapsed whole (``hide-cell``), the setup cell shows its output (what runs where) with its code
  collapsed (``hide-input``). Both stay in the notebooks, for Colab and papermill.

``python tools/sync_notebooks.py`` rewrites the notebooks; ``--check`` exits 1 if one is out of date
(a test runs it, so an edit made in one notebook only does not land).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}

PARAMETERS = '''\
import os

# Each value comes from an environment variable (SAMOCTA_MODE, ...) if set. On Colab, edit the values
# here instead, e.g. MODE = "full" and DATA = "/content/drive/MyDrive/OCTA-500" (see "Running it for real").
MODE = os.environ.get("SAMOCTA_MODE", "smoke")  # "smoke": CPU, synthetic OCTA, tiny SAM; "full": GPU, OCTA-500
DATA = os.environ.get("SAMOCTA_DATA", "")  # an OCTA-500 root (either layout) or your own folders; empty: synthetic
CHECKPOINT = os.environ.get("SAMOCTA_CHECKPOINT", "")  # a SAM checkpoint file, "download" or "random"
MODEL = os.environ.get("SAMOCTA_MODEL", "tiny" if MODE == "smoke" else "vit_h")
TASK = os.environ.get("SAMOCTA_TASK", "FAZ")  # FAZ, RV, Capillary, Artery or Vein
FOV = os.environ.get("SAMOCTA_FOV", "3M")  # 3M or 6M: the part of an OCTA-500 tree
FOV_MM = float(os.environ.get("SAMOCTA_FOV_MM", "0")) or None  # your folders' scan width in mm (0: dataset.json's)
CHANNELS = os.environ.get("SAMOCTA_CHANNELS", "auto")  # SAM's 3 channels: auto, one projection, or three names
SEED = int(os.environ.get("SAMOCTA_SEED", "0"))
EPOCHS = int(os.environ.get("SAMOCTA_EPOCHS", "12" if MODE == "smoke" else "100"))
SUBJECTS = int(os.environ.get("SAMOCTA_SUBJECTS", "0"))  # training subjects per run; 0: all
SPLIT = os.environ.get("SAMOCTA_SPLIT", "standard")  # "standard" (train/val/test) or "kfold"
FOLD = int(os.environ.get("SAMOCTA_FOLD", "0"))  # the fold of a "kfold" split, 0-9
BATCH = int(os.environ.get("SAMOCTA_BATCH", "0"))  # images per step; 0: 4 (smoke), 1 (full)
WORKDIR = os.environ.get("SAMOCTA_WORKDIR", "samocta-work")  # runs shared by the chapters
PIP = os.environ.get("SAMOCTA_PIP", "")  # install samocta from: a wheel, a folder or a git address'''

INSTALL = '''\
# Install what this runtime lacks (on Colab: samocta and its helpers), from PIP or the book's
# repository. torch, torchvision and numpy stay exactly as the runtime has them.
import importlib.metadata
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("samocta") is None or PIP:
    source = PIP or "git+{repository}@{branch}"
    keep = [f"{{name}}=={{importlib.metadata.version(name)}}" for name in ("torch", "torchvision", "numpy")
            if importlib.util.find_spec(name) is not None]
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", source,
                          "albumentations==2.0.8", *keep], capture_output=True, text=True)
    if pip.returncode:
        class InstallError(Exception):  # shown as its one line, not as a traceback
            def _render_traceback_(self):
                return [f"error: {{self}}"]
        reason = (pip.stderr.strip().splitlines() or ["no message"])[-1]
        raise InstallError(f"pip could not install {{source}} ({{reason}}). Set PIP to a wheel made by 'make wheel' "
                           "(e.g. on your Drive) or to a git address this runtime can reach")
    added = [line for line in pip.stdout.splitlines() if line.startswith("Successfully installed")]
    print(f"installed from {{source}}:", added[0].removeprefix("Successfully installed ") if added else "nothing new")

from samocta.reader import setup

chapter = setup(MODE, DATA, WORKDIR, MODEL, CHECKPOINT, FOV, SEED, EPOCHS, SUBJECTS, SPLIT, FOLD, BATCH,
                fov_mm=FOV_MM, channels=CHANNELS)
data_root, work = chapter.data_root, chapter.work'''

COLAB_LINK = re.compile(r"^\[Open in Colab\]\(.*$", re.M)


def repository() -> tuple[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"].get("branch", "main")


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _assignment_names(text: str) -> set[str]:
    return set(re.findall(r"^([A-Z_]+) = ", text, re.M))


def synced(path: Path) -> dict:
    """The notebook at ``path`` with the shared parts written in."""
    url, branch = repository()
    nb = json.loads(path.read_text())
    nb["metadata"].update(COLAB_METADATA)
    cells = nb["cells"]
    # title cell: the title, then the Colab link
    title = "".join(cells[0]["source"])
    owner_repo = url.removeprefix("https://github.com/")
    link = (f"[Open in Colab](https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{path.name})"
            " on a GPU runtime; set the parameters below first.")
    if COLAB_LINK.search(title):
        title = COLAB_LINK.sub(link, title)
    else:
        head, _, rest = title.partition("\n")
        title = f"{head}\n\n{link}\n{rest}"
    cells[0]["source"] = _lines(title)
    # parameters cell: the shared block, then the chapter's own lines
    own = "".join(cells[1]["source"])
    shared_names = _assignment_names(PARAMETERS)
    kept = [line for line in own.splitlines() if (m := re.match(r"^([A-Z_]+) = ", line)) and m.group(1) not in shared_names]
    cells[1]["source"] = _lines(PARAMETERS + ("\n" + "\n".join(kept) if kept else ""))
    cells[1]["metadata"] = {**cells[1].get("metadata", {}), "tags": ["parameters", "hide-cell"]}
    # install + setup cell
    cells[2]["source"] = _lines(INSTALL.format(repository=url, branch=branch))
    cells[2]["metadata"] = {**cells[2].get("metadata", {}), "tags": ["setup", "hide-input"]}
    return nb


def dump(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook is out of date; change nothing")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = dump(synced(path))
        if text != path.read_text():
            stale.append(path.name)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python tools/sync_notebooks.py", file=sys.stderr)
        return 1
    print(("rewrote " + ", ".join(stale)) if stale and not args.check else "notebooks in sync")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
