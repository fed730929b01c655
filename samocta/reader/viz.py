"""What a reader sees: a sample's layers and labels, mask overlays and prompt points in the book's
style, the method's figures, and tables that fit the page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from samocta.core.connectivity import EIGHT
from samocta.core.vocabulary import TASKS
from samocta.data.octa500 import LAYERS, Sample

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

POSITIVE, NEGATIVE = "#2ca02c", "#d62728"  # green positives, red negatives, as SAM's own notebooks


def show_mask(mask: np.ndarray, ax: "Axes", color: tuple[float, float, float] = (0.12, 0.56, 1.0), alpha: float = 0.45) -> Any:
    """Overlay a bool ``(H, W)`` mask on an axis in a translucent colour; returns the image artist."""
    rgba = np.zeros((*mask.shape, 4), np.float32)
    rgba[mask] = (*color, alpha)
    return ax.imshow(rgba, interpolation="nearest")


def show_points(coords: np.ndarray, labels: np.ndarray, ax: "Axes", size: float = 160) -> list[Any]:
    """Draw prompt points: positives as green stars, negatives as red stars, white-edged.

    Args:
        coords: float ``(N, 2)`` in ``(x, y)`` pixel coordinates, pixel centres at ``i + 0.5``.
        labels: int ``(N,)``; 1 positive, 0 negative, -1 (padding) is not drawn.
        ax: a matplotlib axis showing the image with ``imshow``'s default extent.

    Returns:
        the scatter artists (remove them with ``artist.remove()``).
    """
    coords = np.asarray(coords, float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    artists = []
    for value, colour in ((1, POSITIVE), (0, NEGATIVE)):
        sel = labels == value
        if sel.any():
            # imshow puts the centre of pixel i at i, the project at i + 0.5
            xy = coords[sel] - 0.5
            artists.append(ax.scatter(xy[:, 0], xy[:, 1], color=colour, marker="*", s=size, edgecolor="white", linewidth=1.0, zorder=3))
    return artists


def prompt_legend(fig: "Figure", masks: dict[str, tuple[float, float, float]] | None = None, ncol: int | None = None) -> Any:
    """A legend under a figure of prompts: green stars positive points, red stars negative ones,
    then one swatch per mask colour (``{"the target": (r, g, b), ...}``).

    Returns:
        the legend.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], marker="*", color="white", markerfacecolor=POSITIVE, markeredgecolor="white", markersize=13, ls="", label="positive point"),
        Line2D([], [], marker="*", color="white", markerfacecolor=NEGATIVE, markeredgecolor="white", markersize=13, ls="", label="negative point"),
    ]
    handles += [Patch(facecolor=colour, alpha=0.6, label=name) for name, colour in (masks or {}).items()]
    return fig.legend(handles=handles, loc="lower center", ncol=ncol or len(handles), fontsize=8.5, frameon=False,
                      bbox_to_anchor=(0.5, 0.0))


def show_table(df: "pd.DataFrame", digits: int = 3, missing: str = "–", missing_means: str = "not measured",
               note: str | None = None) -> Any:
    """A table as a reader should see it: rounded, a dash (never NaN) where a value is missing, in a
    box of its own that scrolls sideways when the table is wider than the page.

    Args:
        df: the table.
        digits: decimals of floats.
        missing: what a missing value shows.
        missing_means: what a missing value means here; said under the table when there is one.
        note: more to say under the table.

    Returns:
        an ``IPython.display.HTML`` (the notebook shows it; ``.data`` is the HTML).
    """
    import html as html_lib

    from IPython.display import HTML

    cells = [{"selector": "th, td", "props": "padding: 3px 9px; text-align: right; white-space: nowrap;"},
             {"selector": "th.row_heading, th.index_name", "props": "text-align: left;"}]
    table = df.style.format(precision=digits, na_rep=missing).set_table_styles(cells).to_html()
    notes = []
    if df.isna().to_numpy().any():
        notes.append(f"{missing}: {missing_means}.")
    if note:
        notes.append(note)
    foot = f'<p class="samocta-table-note">{html_lib.escape(" ".join(notes))}</p>' if notes else ""
    return HTML(f'<div class="samocta-table" style="overflow-x: auto; max-width: 100%;">{table}</div>{foot}')


def show_sample(sample: Sample, title: str | None = None, layers: tuple[str, ...] = LAYERS) -> "Figure":
    """One subject side by side: the three projections, then the five labels.

    Returns:
        the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if t in sample.labels]
    fig, axes = plt.subplots(1, len(layers) + len(tasks), figsize=(2.2 * (len(layers) + len(tasks)), 2.6))
    for ax, (c, name) in zip(axes, enumerate(layers)):
        ax.imshow(sample.image[..., c], cmap="gray", vmin=0, vmax=255)
        ax.set_title(name, fontsize=9)
    for ax, task in zip(axes[len(layers) :], tasks):
        ax.imshow(sample.labels[task], cmap="gray", interpolation="nearest")
        ax.set_title(task, fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_subjects(samples: list[Sample], layers: tuple[str, ...] = ("FULL", "ILM_OPL"), titles: list[str] | None = None) -> "Figure":
    """Several subjects side by side, one per column: the chosen projections, then the labels.

    The last row colours the labels as OCTA-500 figures do: capillaries grey, arteries red, veins
    blue, the FAZ yellow; its outline is drawn on the projections too, so the shape of the FAZ
    and the way vessels approach it can be compared between subjects.

    Args:
        samples: the subjects, each with ``image`` in ``LAYERS`` order and the five labels.
        layers: projections to show, by name.
        titles: one per subject (default: its id).

    Returns:
        the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    n = len(samples)
    fig, axes = plt.subplots(len(layers) + 1, n, figsize=(2.3 * n, 2.35 * (len(layers) + 1)), squeeze=False)
    for col, sample in enumerate(samples):
        faz = sample.labels["FAZ"]
        for row, name in enumerate(layers):
            ax = axes[row, col]
            ax.imshow(sample.image[..., LAYERS.index(name)], cmap="gray", vmin=0, vmax=255)
            ax.contour(faz, levels=[0.5], colors=[(1.0, 0.85, 0.1)], linewidths=0.8)
            if col == 0:
                ax.text(-0.06, 0.5, name, transform=ax.transAxes, rotation=90, va="center", ha="right", fontsize=9)
        colour = np.zeros((*faz.shape, 3))
        colour[sample.labels["Capillary"]] = 0.45
        colour[sample.labels["Artery"]] = (0.9, 0.15, 0.1)
        colour[sample.labels["Vein"]] = (0.15, 0.35, 0.95)
        colour[faz] = (1.0, 0.85, 0.1)
        axes[-1, col].imshow(colour, interpolation="nearest")
        if col == 0:
            axes[-1, col].text(-0.06, 0.5, "labels", transform=axes[-1, col].transAxes, rotation=90, va="center", ha="right", fontsize=9)
        axes[0, col].set_title(titles[col] if titles else f"subject {sample.id}", fontsize=8.5)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def show_improvement(ax: "Axes", before: np.ndarray, after: np.ndarray, target: np.ndarray, min_pixels: int = 8) -> bool:
    """Point a white arrow at the largest region that ``after`` gets right and ``before`` gets wrong.

    The paper marks such places with white arrows in its qualitative figures.

    Args:
        ax: the axis showing the image.
        before, after, target: bool ``(H, W)`` masks (e.g. without and with prompts, and the label).
        min_pixels: smaller regions are not marked.

    Returns:
        whether an arrow was drawn.
    """
    from scipy import ndimage

    gained = (after == target) & (before != target)
    labels, n = ndimage.label(gained, EIGHT)
    if n == 0:
        return False
    sizes = np.bincount(labels.ravel())[1:]
    best = int(np.argmax(sizes)) + 1
    if sizes[best - 1] < min_pixels:
        return False
    r, c = np.argwhere(labels == best).mean(axis=0)
    h, w = target.shape
    dx, dy = (-0.18 * w if c > w / 2 else 0.18 * w), (-0.18 * h if r > h / 2 else 0.18 * h)
    ax.annotate("", xy=(c, r), xytext=(c + dx, r + dy),
                arrowprops={"arrowstyle": "-|>", "color": "white", "lw": 2.0, "mutation_scale": 16})
    return True


FROZEN, TRAINED = "#c9ced6", "#f28e2b"  # grey: frozen weights; orange: what fine-tuning changes


def method_figure(model_type: str = "vit_h", rank: int = 4) -> "Figure":
    """SAM-OCTA drawn from the model itself: SAM's three parts, LoRA on q and v of every encoder
    block, what is frozen, and where the prompts enter.

    The counts (blocks, embedding size, trainable parameters) are read from a ``LoRASam`` built on
    PyTorch's meta device (no weights, no memory), so the figure stays true to the code.

    Args:
        model_type: a SAM type of segment-anything ("vit_b", "vit_l", "vit_h"; the paper's is vit_h) or "tiny".
        rank: the LoRA rank.

    Returns:
        the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from samocta.model.build import build_sam
    from samocta.model.lora import LoRASam

    with torch.device("meta"):
        sam = build_sam(model_type, pretrained=False)
        model = LoRASam(sam, rank=rank)
    blocks = len(sam.image_encoder.blocks)
    size = sam.image_encoder.img_size
    grid = sam.prompt_encoder.image_embedding_size
    channels = sam.prompt_encoder.embed_dim
    trainable = model.num_trainable()
    decoder = sum(p.numel() for p in sam.mask_decoder.parameters())

    fig, ax = plt.subplots(figsize=(10, 4.8))
    ax.set_xlim(0, 110)
    ax.set_ylim(0, 46)
    ax.set_axis_off()

    def box(x, y, w, h, text, colour, **kw):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.4,rounding_size=1.2", fc=colour, ec="#4a4f57", lw=1, **kw))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#333"))

    box(0.5, 17, 13, 14, f"OCTA\nprojections\nOPL_BM,\nILM_OPL, FULL\nas R, G, B,\n{size} px", "white")
    arrow(14.5, 24, 18, 24)
    # the image encoder: a stack of transformer blocks, each with LoRA on q and v
    ax.add_patch(FancyBboxPatch((18, 8), 34, 33, boxstyle="round,pad=0.4,rounding_size=1.2", fc="#eef0f3", ec="#4a4f57", lw=1))
    ax.text(35, 43.2, f"image encoder: ViT, {blocks} blocks (frozen)", ha="center", fontsize=10.5, weight="bold")
    shown = min(blocks, 8)
    for i in range(shown):
        y = 10 + i * 3.8
        ax.add_patch(FancyBboxPatch((20, y), 21, 2.8, boxstyle="round,pad=0.1", fc=FROZEN, ec="#4a4f57", lw=0.6))
        ax.text(30.5, y + 1.4, "attention + MLP" if i < shown - 1 else f"... {blocks} blocks in all", ha="center", va="center", fontsize=7.5)
        for k, name in enumerate(("q", "v")):
            ax.add_patch(FancyBboxPatch((42.5 + 4.3 * k, y), 3.4, 2.8, boxstyle="round,pad=0.1", fc=TRAINED, ec="#4a4f57", lw=0.6))
            ax.text(44.2 + 4.3 * k, y + 1.4, f"{name}+BA", ha="center", va="center", fontsize=6.5)
    arrow(52.5, 24, 57, 24)
    box(57, 19, 11, 10, f"image\nembedding\n{grid[0]} x {grid[1]} x {channels}", "white")
    # the prompts enter through the prompt encoder, next to the image embedding
    box(57, 34, 11, 8, "prompt points\nfrom the label:\nglobal or local", "white")
    arrow(68.8, 38, 74.5, 38)
    box(74.5, 34.5, 14, 7, "prompt encoder\n(frozen)", FROZEN)
    arrow(81.5, 33.8, 81.5, 31.4)
    arrow(68.8, 24, 74.5, 24)
    box(74.5, 13, 14, 18, f"mask decoder\n(frozen;\ntrained with\ntrain_decoder:\n{decoder:,}\nweights)", FROZEN, ls="--")
    arrow(89.2, 22, 93.5, 22)
    box(93.5, 15, 15.5, 14, "3 masks + IoU\nthe most confident\nis the answer,\nresized to the\nlabel (304 / 400 px)", "white")
    ax.text(35, 3.2, f"LoRA: W q/v x + B A x, rank {rank}, on q and v of all {blocks} blocks\n"
            f"{trainable:,} trainable parameters; everything else frozen", ha="center", fontsize=9.5,
            bbox=dict(fc="white", ec=TRAINED, lw=1.2, boxstyle="round,pad=0.4"))
    handles = [plt.Rectangle((0, 0), 1, 1, fc=FROZEN, ec="#4a4f57"), plt.Rectangle((0, 0), 1, 1, fc=TRAINED, ec="#4a4f57")]
    ax.legend(handles, ["frozen (SAM's weights)", "trained (LoRA)"], loc="lower right", fontsize=9.5, frameon=False)
    fig.tight_layout()
    return fig


def _vessel_tree(size: int = 72) -> tuple[np.ndarray, np.ndarray]:
    """A small vessel label: a thick trunk (7 px) that branches into three thin vessels (2 px).

    Returns:
        the bool label and the bool centre lines of the thin branches.
    """
    from scipy import ndimage
    from skimage.draw import line

    trunk, thin = np.zeros((size, size), bool), np.zeros((size, size), bool)
    rr, cc = line(36, 2, 36, 30)
    trunk[rr, cc] = True
    for (r0, c0, r1, c1) in ((36, 30, 8, 68), (36, 30, 64, 66), (22, 48, 3, 40)):
        rr, cc = line(r0, c0, r1, c1)
        thin[rr, cc] = True
    label = ndimage.binary_dilation(trunk, iterations=3) | ndimage.binary_dilation(thin, np.ones((2, 2), bool))
    return label, thin


def loss_figure() -> tuple["Figure", dict[str, dict[str, float]]]:
    """Why clDice: a vessel label, its soft skeleton, and two predictions scored by ``samocta.train.losses``.

    One prediction breaks the thin vessels (5 px gaps every 9 px), the other draws every vessel
    too thick. Dice counts pixels, so it barely notices breaks in thin vessels (they hold few pixels)
    and punishes the extra width; clDice (Shit et al., CVPR 2021) compares centre lines, so it
    punishes the breaks, where the label's skeleton leaves the prediction, and forgives the width,
    because the prediction's skeleton still lies inside the label.

    Returns:
        the figure and the scores, ``{"broken": {"Dice": ..., "clDice": ...}, "too thick": {...}}``.
    """
    import matplotlib.pyplot as plt
    import torch
    from scipy import ndimage

    from samocta.train.losses import dice_loss, soft_cldice_loss, soft_skeleton

    label, thin = _vessel_tree()
    broken = label.copy()
    rows, cols = np.nonzero(thin)
    far = np.hypot(rows - 36, cols - 30) > 6  # away from the trunk
    for k in np.flatnonzero(far)[5::9]:  # 5 px gaps every 9 px along the thin branches
        broken[max(rows[k] - 2, 0) : rows[k] + 3, max(cols[k] - 2, 0) : cols[k] + 3] = False
    thick = ndimage.binary_dilation(label, iterations=2)
    as_tensor = lambda m: torch.from_numpy(m.astype(np.float32))[None, None]  # noqa: E731
    target = as_tensor(label)
    scores = {}
    for name, pred in (("broken", broken), ("too thick", thick)):
        p = as_tensor(pred)
        scores[name] = {
            "Dice": float(1 - dice_loss(p, target, from_logits=False, smooth=0.0)),
            "clDice": float(1 - soft_cldice_loss(p, target, from_logits=False, smooth=0.0)),
        }
    skeleton = soft_skeleton(target)[0, 0].numpy()

    fig, axes = plt.subplots(1, 4, figsize=(11, 3.7))
    panels = (
        (label, "the label", None),
        (skeleton, "its soft skeleton", None),
        (broken, "prediction: thin vessels broken", scores["broken"]),
        (thick, "prediction: too thick", scores["too thick"]),
    )
    for ax, (image, title, score) in zip(axes, panels):
        ax.imshow(image, cmap="gray", interpolation="nearest")
        if score is not None:
            ax.contour(label, levels=[0.5], colors=["#1f77b4"], linewidths=0.8)
            title += f"\nDice {score['Dice']:.2f}, clDice {score['clDice']:.2f}"
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.text(0.5, 0.01, "blue outline: the label", ha="center", fontsize=8, color="#1f77b4")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig, scores
