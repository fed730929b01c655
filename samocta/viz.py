"""Figures: a sample's layers and labels, mask overlays and prompt points in the book's style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from samocta.connectivity import EIGHT
from samocta.data.octa500 import LAYERS, TASKS, Sample

if TYPE_CHECKING:
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
