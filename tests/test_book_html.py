"""The built book as a reader sees it: every chapter page in headless Chromium, with its figures and
no error output; a screenshot of each page goes to _build/screenshots/. Run after ``make book``
(``make check-book``)."""

from __future__ import annotations

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
