"""The built book as a reader sees it: every chapter page in headless Chromium, with its figures and
no error output; a screenshot of each page goes to _build/screenshots/. Run after ``make book``
(``make check-book``)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.book
ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def page():
    playwright = pytest.importorskip("playwright.sync_api")
    if not (HTML / "index.html").exists():
        pytest.fail(f"no built book at {HTML}: run 'make book' first")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"],
        )
        yield browser.new_page(viewport={"width": 1280, "height": 1000})
        browser.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_has_figures_and_no_errors(page, chapter):
    path = HTML / "notebooks" / f"{chapter}.html"
    assert path.exists(), path
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{chapter}.png"), full_page=True)
    assert page.locator("h1").first.inner_text().strip(), "a title"
    figures = page.locator(".cell_output img")
    assert figures.count() >= 1, f"{chapter}: no figure in the outputs"
    # every figure really decoded (a broken image has naturalWidth 0)
    widths = figures.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), widths
    text = " ".join(page.locator(".cell_output").all_inner_texts())
    for bad in ("Traceback (most recent call last)", "Error:", "Exception"):
        assert bad not in text, f"{chapter}: error output ({bad})"
    assert page.locator(".output.error, .output.traceback").count() == 0


@pytest.fixture(scope="module")
def served():
    """The built book over HTTP on 127.0.0.1, as a web host serves it (ES modules do not load from file://)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_clicks_on_the_rendered_page_decode_in_the_browser_as_python_does(page, served):
    """Two clicks on the static page draw a mask; it matches the torch decoder's for the same points."""
    import numpy as np
    import torch

    from samocta.core import runs
    from samocta.model import LoRASam, PromptableSam, build_sam
    from samocta.model.frame import resized_shape
    from samocta.model.promptable import Embedding

    page.goto(f"{served}/notebooks/05_interactive.html")
    page.wait_for_selector(".samocta-click[data-ready]", timeout=60_000)
    root = page.locator(".samocta-click")
    status = page.locator(".samocta-click-status").inner_text()
    assert root.get_attribute("data-ready") == "browser", status
    assert "decoded in your browser" in status
    canvas = page.locator(".samocta-click-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    latencies = []
    for fx, fy, button in ((0.45, 0.55, "left"), (0.7, 0.3, "right")):
        before = int(root.get_attribute("data-decodes"))
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, button=button)
        page.wait_for_function(f"Number(document.querySelector('.samocta-click').dataset.decodes) > {before}", timeout=30_000)
        page.wait_for_function("document.querySelector('.samocta-click').dataset.latencyMs !== undefined")
        latencies.append(float(root.get_attribute("data-latency-ms")))
        page.evaluate("delete document.querySelector('.samocta-click').dataset.latencyMs")
    shown = page.evaluate("() => { const m = document.querySelector('.samocta-click').samoctaMask;"
                          " return {bits: Array.from(m.bits), points: m.points}; }")
    page.screenshot(path=str(ROOT / "_build" / "screenshots" / "05_interactive_clicked.png"), full_page=False)
    points = np.asarray(shown["points"], np.float64)
    assert len(points) == 4 and points[2:, 2].tolist() == [1, 0]  # the defaults, then a positive and a negative click
    # the same points through the torch model the chapter used, from the embedding the page used
    folds = runs.fold_dirs(ROOT / "_build" / "work" / "runs" / "FAZ-tiny-global")
    model = LoRASam.from_adapter(runs.adapter(folds[0])) if folds else PromptableSam(build_sam("tiny"))
    (embedding_file,) = (HTML / "_static" / "samocta").glob("embedding-*.bin")
    features = torch.from_numpy(np.fromfile(embedding_file, dtype="<f4").reshape(1, -1, *model.sam.prompt_encoder.image_embedding_size))
    height = width = int(round(np.sqrt(len(shown["bits"]))))
    embedding = Embedding(features, resized_shape((height, width), model.img_size), (height, width))
    # the page decodes clicks one after another as the kernel's ClickSession does (the previous logits fed back
    # where the model was trained so)
    from samocta.decode import ClickSession, plan_resampling
    from samocta.model.promptable import binarize

    session = ClickSession(model.eval(), plan_resampling((height, width), None, None), [embedding])
    expected = binarize(session.decode(points[:, :2].astype(np.float32), points[:, 2].astype(np.int64)))[0]
    got = np.asarray(shown["bits"], bool).reshape(height, width)
    iou = (got & expected).sum() / max((got | expected).sum(), 1)
    print(f"browser vs torch mask IoU {iou:.4f}; click to mask {latencies} ms")
    assert expected.sum() > 0 and iou >= 0.99, iou
    assert max(latencies) <= 100, latencies
    # Undo: the page keeps each click's decode, so the mask of the first three points comes back without a decode
    before = int(root.get_attribute("data-decodes"))
    page.locator(".samocta-click-button", has_text="Undo").click()
    page.wait_for_function(f"Number(document.querySelector('.samocta-click').dataset.decodes) > {before}", timeout=30_000)
    undone = page.evaluate("() => { const m = document.querySelector('.samocta-click').samoctaMask;"
                           " return {bits: Array.from(m.bits), steps: document.querySelector('.samocta-click').dataset.stepsDecoded}; }")
    assert undone["steps"] == "0"
    again = binarize(session.decode(points[:3, :2].astype(np.float32), points[:3, 2].astype(np.int64)))[0]
    got = np.asarray(undone["bits"], bool).reshape(height, width)
    assert (got & again).sum() / max((got | again).sum(), 1) >= 0.99


PAGES = [f"notebooks/{c}" for c in CHAPTERS] + ["book/intro", "book/method", "book/gpu", "book/results", "book/references"]


def _open(page, name: str) -> None:
    path = HTML / f"{name}.html"
    assert path.exists(), path
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


@pytest.mark.parametrize("name", PAGES)
def test_page_reads_without_sideways_scroll_or_nan(page, name):
    """At 1280 px the main column never scrolls sideways (a wide table scrolls inside its own box),
    no table shows NaN, and every figure has a caption or alt text that says what it shows."""
    _open(page, name)
    overflow = page.evaluate(
        """() => {
            const doc = document.documentElement;
            const column = document.querySelector('.bd-article') || document.querySelector('main');
            const right = column.getBoundingClientRect().right;
            // anything reaching past the column's right edge must sit in a box that scrolls or clips it
            const loose = [];
            for (const e of column.querySelectorAll('*')) {
                if (e.getBoundingClientRect().right <= right + 1) continue;
                let box = e.parentElement, held = false;
                while (box && box !== column) {
                    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(box).overflowX)) { held = true; break; }
                    box = box.parentElement;
                }
                if (!held) loose.push(e.tagName.toLowerCase() + '.' + e.className);
            }
            return {page: doc.scrollWidth - doc.clientWidth, column: column.scrollWidth - column.clientWidth, loose: loose.slice(0, 5)};
        }"""
    )
    assert overflow["page"] <= 1 and overflow["column"] <= 1 and not overflow["loose"], f"{name} scrolls sideways: {overflow}"
    tables = " ".join(page.locator("main table").all_inner_texts())
    assert not re.search(r"\bnan\b", tables, re.I), f"{name}: NaN in a table"
    images = page.locator("main img").evaluate_all(
        """imgs => imgs.map(i => ({
            alt: (i.getAttribute('alt') || '').trim(),
            src: i.getAttribute('src') || '',
            caption: !!(i.closest('figure') && i.closest('figure').querySelector('figcaption')),
        }))"""
    )
    for image in images:
        # MyST-NB writes the file name as alt text when a cell gives none: that describes nothing
        described = image["alt"] and "_images/" not in image["alt"] and not image["alt"].endswith(".png")
        assert described or image["caption"], f"{name}: a figure without caption or alt text ({image['src'][:60]})"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_setup_cells_are_folded_away(page, chapter):
    """The parameters and the install/setup code are in the notebook but not on screen until asked for."""
    _open(page, f"notebooks/{chapter}")
    for code in ('MODE = os.environ.get("SAMOCTA_MODE"', "from samocta.reader import setup"):
        cell = page.locator("div.cell", has_text=code).first
        assert cell.count() == 1, f"{chapter}: no cell with {code!r}"
        source = cell.locator(".cell_input").first
        assert not source.is_visible(), f"{chapter}: {code!r} is visible by default"


def test_method_page_links_out_and_draws_the_method(page):
    _open(page, "book/method")
    links = page.locator("main a").evaluate_all("as => as.map(a => a.href)")
    for target in ("arxiv.org/abs/2309.11758", "github.com/ShellRedia/SAM-OCTA", "ieee-dataport.org/open-access/octa-500",
                   "github.com/facebookresearch/segment-anything", "benchmarks/RESULTS.md"):
        assert any(target in href for href in links), f"no link to {target}"
    captions = " ".join(page.locator("main figure figcaption").all_inner_texts())
    assert "method_figure" in captions and "loss_figure" in captions
    widths = page.locator("main figure img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) >= 2 and all(w > 0 for w in widths), widths


def test_the_report_page_of_chapter_6_opens_with_every_scan_and_the_flagged_ones_first(page):
    """The page ``predict --report`` wrote in chapter 6's build, opened as a clinic would open it."""
    import pandas as pd

    report = ROOT / "_build" / "work" / "report"
    path = report / "report.html"
    assert path.exists(), f"{path}: chapter 6 writes it ('make book' first)"
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "report.png"), full_page=True)
    table = pd.read_csv(report / "measurements.csv", dtype={"id": str})
    figures = page.locator("section img")
    assert figures.count() == len(table) > 0
    widths = figures.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), widths
    headings = [h.replace("review", "").strip() for h in page.locator("section h2").all_inner_texts()]
    assert sorted(headings) == sorted(table["id"]), "every scan of measurements.csv, once"
    flagged = set(table.loc[table["review"].astype(bool), "id"])
    assert set(headings[:len(flagged)]) == flagged, "flagged scans first"
    assert page.locator("section .flag").count() == len(flagged)
    assert f"{len(flagged)} flagged" in page.locator("h1").inner_text()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_cell_that_draws_shows_its_figure(chapter):
    """A code cell that makes a matplotlib figure carries it as an output in the executed chapter: a library call
    that switched pyplot's backend once hid the figures of every later cell, and the page still had others."""
    import nbformat

    executed = ROOT / "_build" / "src" / "notebooks" / f"{chapter}.ipynb"
    if not executed.exists():
        pytest.fail(f"no executed chapter at {executed}: run 'make book' first")
    drawing = re.compile(r"\bplt\.(subplots|figure)\(")
    missing = [i for i, cell in enumerate(nbformat.read(executed, as_version=4).cells)
               if cell.cell_type == "code" and drawing.search(cell.source)
               and not any("image/png" in out.get("data", {}) for out in cell.outputs)]
    assert not missing, f"{chapter}: cells {missing} draw a figure that is not in their output"
