"""Build the executed book: papermill runs every notebook of the table of contents with the smoke
parameters into _build/src, then Jupyter Book renders that tree (execution off) into _build/html.

Run through ``make book``. Environment: SAMOCTA_MODE (default smoke) and the other SAMOCTA_*
parameters reach the notebooks' parameter cells unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
SRC = BUILD / "src"


def toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files += [s["file"] for s in chapter.get("sections", [])]
    return files


def execute(notebook: Path) -> float:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook), str(notebook), kernel_name="python3", cwd=str(notebook.parent),
            progress_bar=False, request_save_on_cell_execute=False, execution_timeout=1200,
        )
    except PapermillExecutionError as exc:
        print(f"\n{notebook.relative_to(SRC)} failed in cell {exc.exec_count}:\n{exc.ename}: {exc.evalue}", file=sys.stderr)
        print("".join(exc.traceback[-3:]) if exc.traceback else "", file=sys.stderr)
        raise SystemExit(1) from None
    return time.perf_counter() - t0


def main() -> None:
    os.environ.setdefault("SAMOCTA_MODE", "smoke")
    # figures must render inline in the executed notebooks, whatever the caller set (make exports Agg)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, SRC / name)
    for folder in ("book", "notebooks"):
        shutil.copytree(ROOT / folder, SRC / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "samocta-work"))
    start = time.perf_counter()
    for entry in toc_files(toc):
        notebook = SRC / f"{entry}.ipynb"
        if notebook.exists():
            seconds = execute(notebook)
            print(f"executed {entry}.ipynb in {seconds:.0f} s", flush=True)
    print(f"all notebooks executed in {time.perf_counter() - start:.0f} s", flush=True)
    shutil.rmtree(SRC / "notebooks" / "samocta-work", ignore_errors=True)  # data and runs, not pages
    build = subprocess.run(
        # --path-output ROOT: the HTML lands in ROOT/_build/html
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(SRC), "--path-output", str(ROOT),
         "--all", "-W", "-n", "--keep-going"],
    )
    if build.returncode:
        raise SystemExit(build.returncode)
    print(f"book: {BUILD / 'html' / 'index.html'} ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
