"""The per-scan report a clinic reads: each scan's overlay with the ETDRS grid drawn on it and its numbers,
and one HTML page listing them, the scans flagged for review first (``predict --report``).

Every number shown is read from the measurements table ``predict`` wrote (``samocta.measure.COLUMNS``
says what each is), so the page, the CSV and the Python API never disagree.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from samocta.data.octa500 import TASK_FOLDERS

if TYPE_CHECKING:
    import pandas as pd

REPORT_DIR = "report"
PAGE = "report.html"
# what the figure's table shows, by task, in this order (a column the row lacks is left out)
SHOWN = {
    "FAZ": ("faz_area_mm2", "faz_perimeter_mm", "faz_circularity", "faz_acircularity", "faz_axis_ratio", "faz_area_px"),
    "vessels": ("area_density_pct", "skeleton_density_mm_per_mm2", "mean_width_um", "density_centre_pct", "density_inner_pct",
                "density_outer_pct", "fd300_pct", "fractal_dimension", "skeleton_fractal_dimension", "mean_width_px"),
}


def _value(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _draw_grid(ax, row: Mapping, shape: tuple[int, int]) -> None:
    """The ETDRS circles (1, 3, 6 mm), the sector diagonals and the inner sectors' names on an axis
    showing the scan, clipped to it."""
    from samocta.measure.regional import ETDRS_DIAMETERS_MM

    pixel_um, x, y = row.get("pixel_um"), row.get("grid_x_px"), row.get("grid_y_px")
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (pixel_um, x, y)):
        return
    cx, cy = float(x) - 0.5, float(y) - 0.5  # imshow puts pixel centres on integers
    radii = [d / 2 * 1000 / float(pixel_um) for d in ETDRS_DIAMETERS_MM]
    from matplotlib.patches import Circle

    for r in radii:
        ax.add_patch(Circle((cx, cy), r, fill=False, color="#ffd23f", lw=1))
    for angle in (45, 135, 225, 315):
        dx, dy = math.cos(math.radians(angle)), -math.sin(math.radians(angle))
        ax.plot([cx + radii[0] * dx, cx + radii[-1] * dx], [cy + radii[0] * dy, cy + radii[-1] * dy], color="#ffd23f", lw=1)
    eye = row.get("eye")
    right, left = {"OD": ("N", "T"), "OS": ("T", "N")}.get(eye, ("R", "L"))
    middle = (radii[0] + radii[1]) / 2
    for label, (dx, dy) in (("S", (0, -1)), (right, (1, 0)), ("I", (0, 1)), (left, (-1, 0))):
        ax.text(cx + middle * dx, cy + middle * dy, label, color="#ffd23f", ha="center", va="center", fontsize=9,
                fontweight="bold")
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)


def scan_figure(row: Mapping, image: np.ndarray, mask: np.ndarray, channels: Sequence[str], path: Path) -> None:
    """One scan's report figure: the overlay, the grid, and its numbers in a table, written to ``path``."""
    # A bare Figure, not pyplot: it draws on its own canvas, so a notebook's backend and its open figures stay as
    # they were (switching pyplot to Agg here once hid every later figure of the kernel).
    from matplotlib.figure import Figure

    from samocta.core.files import atomic_write

    shown = list(channels).index("FULL") if "FULL" in channels else 1
    grey = image[..., shown].astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[mask] = 0.55 * rgb[mask] + 0.45 * np.array([30.0, 144.0, 255.0])
    fig = Figure(figsize=(9.5, 4.6))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.05]})
    left.imshow(rgb.astype(np.uint8))
    _draw_grid(left, row, mask.shape)
    left.set_title(f"{row['id']}: {row['task']}" + ("  (review)" if row.get("review") else ""), fontsize=10)
    left.axis("off")
    keys = SHOWN["FAZ" if row["task"] == "FAZ" else "vessels"]
    cells = [[k, _value(row[k])] for k in keys if k in row]
    cells += [["grid centred on", _value(row.get("grid_centre", "no grid (width in mm unknown)"))], ["eye", _value(row.get("eye", "unknown"))],
              ["quality", _value(row.get("quality"))]]
    right.axis("off")
    table = right.table(cellText=cells, colLabels=["measure", "value"], loc="center", cellLoc="left", colLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1, 1.25)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100), sync=False)


def write_report(out: str | Path, table: "pd.DataFrame", images: Mapping, channels: Sequence[str]) -> Path:
    """``out/report/<id>.png`` for every row of ``table`` (predict's measurements) and ``out/report.html``
    listing them: the scans flagged for review first, then by quality, lowest first.

    Args:
        out: predict's output folder (its masks are read from there).
        images: id -> the scan's uint8 ``(H, W, 3)`` image as it was segmented.
        channels: the projections in SAM's channels (the overlay shows FULL, else the middle one).

    Returns:
        the page's path.
    """
    import pandas as pd

    from samocta.core.files import atomic_write_text
    from samocta.data import read_grey

    out = Path(out)
    from samocta.predict.review import reason_rank

    reason = table["review_reason"].fillna("").astype(str) if "review_reason" in table.columns else pd.Series("", table.index)
    # flagged first, those with a reason before the rest (no signal first: nothing to see), then by quality
    order = table.assign(_reason=reason != "", _rank=reason.map(reason_rank)).sort_values(
        ["review", "_rank", "quality"], ascending=[False, True, True], kind="stable")
    entries = []
    for _, row in order.iterrows():
        sid = row["id"]
        mask = read_grey(out / TASK_FOLDERS[row["task"]] / f"{sid}.png") > 0
        figure = out / REPORT_DIR / f"{sid}.png"
        scan_figure(row.to_dict(), images[sid], mask, channels, figure)
        flag = '<span class="flag">review</span> ' if row["review"] else ""
        why = f'<p class="why">{html.escape(str(row["review_reason"]))}</p>' if row.get("_reason") else ""
        # a file name is text in the heading and a URL in the image: "#", "%" or "?" in it must not end the path
        source = html.escape(f"{REPORT_DIR}/{quote(figure.name)}")
        entries.append(f'<section><h2>{flag}{html.escape(str(sid))}</h2>{why}<img src="{source}" '
                       f'alt="scan {html.escape(str(sid))}: overlay of the {html.escape(str(row["task"]))} mask with the ETDRS grid, '
                       f'and its measurements"></section>')
    flagged = int(order["review"].sum())
    task = str(table["task"].iloc[0]) if len(table) else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>samocta report: {html.escape(task)}</title>
<style>body {{ font-family: sans-serif; max-width: 1000px; margin: 2em auto; }} img {{ max-width: 100%; }}
.flag {{ background: #c0392b; color: white; padding: 0 .4em; border-radius: .2em; font-size: .8em; }}
.why {{ color: #c0392b; }}</style></head>
<body><h1>{html.escape(task)}: {len(table)} scans, {flagged} flagged for review</h1>
<p>Each figure: the mask over the scan, the ETDRS grid (1, 3 and 6 mm circles and the sector diagonals) where the scan's
width in mm is known, and its measurements, as in <code>measurements.csv</code> beside this page. Flagged scans come
first: those with a reason (no signal, no structure found, a mask or a width unlike the adapter's training labels), then
the lowest quality; check them by hand.</p>
{chr(10).join(entries)}
</body></html>
"""
    path = out / PAGE
    atomic_write_text(path, page)
    return path
