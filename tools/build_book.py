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
# what the clicking chapter writes for its browser decoder (decoder.onnx, image embeddings)
BROWSER_ASSETS = SRC / "browser-assets"
# the chapters' shared work folder (data, runs), kept beside the pages for the page checks
WORK = BUILD / "work"
# onnxruntime-web's ES module (its glue bundled in) and its WebAssembly runtime, from npm
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")


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


def draw_book_figures(dest: Path) -> None:
    """The method page's figures, drawn by the package (``samocta.reader.viz``) at every build so that they
    stay true to the code: the model's parts from a vit_h built on the meta device, the loss
    example scored by ``samocta.train.losses``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from samocta.reader import loss_figure, method_figure

    dest.mkdir(parents=True, exist_ok=True)
    for name, fig in (("method.png", method_figure("vit_h")), ("loss.png", loss_figure()[0])):
        fig.savefig(dest / name, dpi=120, bbox_inches="tight")
        plt.close(fig)
    print(f"drew the method page's figures into {dest.relative_to(ROOT)}", flush=True)


def copy_browser_files(dest: Path) -> None:
    """The clicking chapter's browser decoder into the built pages: the front end, onnxruntime-web
    (from node_modules; the page loads nothing from a CDN), the decoder and the embeddings; prints
    what the chapter adds to a reader's download."""
    import gzip

    dist = ROOT / "node_modules" / "onnxruntime-web" / "dist"
    missing = [name for name in ORT_FILES if not (dist / name).is_file()]
    if missing:
        raise SystemExit(f"error: {dist} lacks {missing}; run 'npm ci' (make book does) to fetch onnxruntime-web")
    dest.mkdir(parents=True, exist_ok=True)
    files = [ROOT / "samocta" / "assets" / "click_canvas.js", *(dist / name for name in ORT_FILES)]
    files += sorted(BROWSER_ASSETS.glob("*")) if BROWSER_ASSETS.exists() else []
    raw = packed = 0
    for path in files:
        shutil.copy(path, dest / path.name)
        data = path.read_bytes()
        raw += len(data)
        packed += len(gzip.compress(data, 6))
    print(f"browser decoder: {len(files)} files in {dest.relative_to(ROOT)}, {raw / 1e6:.1f} MB "
          f"({packed / 1e6:.1f} MB gzip-compressed, as a web server sends them)", flush=True)


def main() -> None:
    os.environ.setdefault("SAMOCTA_MODE", "smoke")
    # figures must render inline in the executed notebooks, whatever the caller set (make exports Agg)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ["SAMOCTA_BROWSER_DIR"] = str(BROWSER_ASSETS)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, SRC / name)
    for folder in ("book", "notebooks"):
        shutil.copytree(ROOT / folder, SRC / folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "samocta-work"))
    draw_book_figures(SRC / "book" / "_figures")
    start = time.perf_counter()
    for entry in toc_files(toc):
        notebook = SRC / f"{entry}.ipynb"
        if notebook.exists():
            seconds = execute(notebook)
            print(f"executed {entry}.ipynb in {seconds:.0f} s", flush=True)
    print(f"all notebooks executed in {time.perf_counter() - start:.0f} s", flush=True)
    shutil.rmtree(WORK, ignore_errors=True)  # data and runs, not pages: kept for the page checks
    if (SRC / "notebooks" / "samocta-work").exists():
        shutil.move(str(SRC / "notebooks" / "samocta-work"), str(WORK))
    build = subprocess.run(
        # --path-output ROOT: the HTML lands in ROOT/_build/html
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(SRC), "--path-output", str(ROOT),
         "--all", "-W", "-n", "--keep-going"],
    )
    if build.returncode:
        raise SystemExit(build.returncode)
    copy_browser_files(BUILD / "html" / "_static" / "samocta")
    print(f"book: {BUILD / 'html' / 'index.html'} ({time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
