"""Clicking prompt points on an image in a notebook, with the mask following each click.

``PromptState`` is the pure model of the points (no UI). ``click_prompts`` draws an image with
matplotlib and, when the ipympl backend is active (``%matplotlib widget``), adds a point per click:
left button positive, right button negative (or the Positive/Negative toggle, for touchpads and
runtimes where right clicks do not arrive), with Undo and Clear buttons. With a model, the image
embedding is computed once and every click only re-runs the prompt encoder and mask decoder.
Without ipympl (a fresh Colab runtime, a static book page) it says how to enable it and draws the
given default points and their mask, so a notebook still runs top to bottom.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from samocta.files import atomic_write_text

if TYPE_CHECKING:
    from samocta.model import PromptableSam


@dataclass
class PromptState:
    """Prompt points and their labels, with undo and change callbacks.

    Points are ``(x, y)`` floats in image pixels with pixel centres at ``i + 0.5``; labels are
    1 (positive) or 0 (negative).
    """

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    size: tuple[int, int] | None = None  # (H, W) of the image: points must lie on it
    _history: list[tuple[str, Any]] = field(default_factory=list, repr=False)
    _callbacks: list[Callable[["PromptState"], None]] = field(default_factory=list, repr=False)

    @classmethod
    def from_defaults(cls, points: Sequence[Sequence[float]] | None, size: tuple[int, int] | None = None) -> "PromptState":
        """From ``[(x, y, label), ...]`` (the notebooks' ``DEFAULT_POINTS``), each point checked as ``add`` checks it."""
        state = cls(size=size)
        for x, y, label in points or []:
            state._check(x, y, label)
            state.points.append((float(x), float(y)))
            state.labels.append(int(label))
        return state

    def _check(self, x: float, y: float, label: int) -> None:
        if label not in (0, 1):
            raise ValueError(f"label must be 1 (positive) or 0 (negative), got {label}")
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"a point needs finite coordinates, got ({x}, {y})")
        if self.size is not None and not (0 <= x <= self.size[1] and 0 <= y <= self.size[0]):
            raise ValueError(f"point ({x}, {y}) lies outside the {self.size[1]} x {self.size[0]} image")

    def on_change(self, callback: Callable[["PromptState"], None]) -> None:
        """Call ``callback(state)`` after every change."""
        self._callbacks.append(callback)

    def _changed(self) -> None:
        for callback in self._callbacks:
            callback(self)

    def add(self, x: float, y: float, label: int = 1) -> None:
        """Add a point: ``(x, y)`` on the image (pixel centres at ``i + 0.5``), label 1 or 0."""
        self._check(x, y, label)
        self.points.append((float(x), float(y)))
        self.labels.append(int(label))
        self._history.append(("add", None))
        self._changed()

    def remove_nearest(self, x: float, y: float, max_distance: float | None = None) -> int | None:
        """Remove the point nearest to ``(x, y)`` (within ``max_distance`` px if given); returns its index."""
        if not self.points:
            return None
        d = np.hypot(*(np.asarray(self.points) - (x, y)).T)
        i = int(np.argmin(d))
        if max_distance is not None and d[i] > max_distance:
            return None
        removed = (i, self.points.pop(i), self.labels.pop(i))
        self._history.append(("remove", removed))
        self._changed()
        return i

    def clear(self) -> None:
        if not self.points:
            return
        self._history.append(("clear", (list(self.points), list(self.labels))))
        self.points.clear()
        self.labels.clear()
        self._changed()

    def undo(self) -> bool:
        """Revert the last add, remove or clear; False if there is nothing to undo."""
        if not self._history:
            return False
        kind, data = self._history.pop()
        if kind == "add":
            self.points.pop()
            self.labels.pop()
        elif kind == "remove":
            i, point, label = data
            self.points.insert(i, point)
            self.labels.insert(i, label)
        else:
            self.points[:], self.labels[:] = data
        self._changed()
        return True

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``coords`` float32 ``(N, 2)`` and ``labels`` int64 ``(N,)``, as the model takes them."""
        coords = np.asarray(self.points, np.float32).reshape(-1, 2)
        return coords, np.asarray(self.labels, np.int64).reshape(-1)

    def to_json(self) -> str:
        """The points as strict JSON (every value finite, checked when it was added)."""
        return json.dumps({"points": [list(p) for p in self.points], "labels": self.labels}, allow_nan=False)


def ipympl_active() -> bool:
    """Whether matplotlib draws through ipympl (``%matplotlib widget``)."""
    import matplotlib

    return "ipympl" in matplotlib.get_backend() or "widget" in matplotlib.get_backend().lower()


def enable_widgets() -> bool:
    """Switch a notebook to ipympl, enabling Colab's custom widget manager first; True on success.

    On failure (ipympl missing, or a runtime that refuses it) it prints how to enable it instead.
    """
    if "google.colab" in sys.modules:
        try:
            from google.colab import output  # type: ignore[import-not-found]

            output.enable_custom_widget_manager()
        except Exception:  # noqa: BLE001 - Colab's widget manager has broken before; fall back
            pass
    try:
        import ipympl  # noqa: F401
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return False
        shell.run_line_magic("matplotlib", "widget")
        return ipympl_active()
    except Exception as exc:  # noqa: BLE001
        print(
            f"Interactive clicking needs ipympl ({type(exc).__name__}: {exc}). Install it with "
            "'pip install ipympl', restart the kernel and run '%matplotlib widget'; showing the default points instead."
        )
        return False


class ClickPrompts:
    """An image to click prompts on; see ``click_prompts``.

    Attributes:
        state: the ``PromptState``.
        mask: the latest predicted mask, bool ``(H, W)`` (None without a model).
        fig, ax: the matplotlib figure and axis.
        interactive: whether clicks are connected.
        decodes: how many times the mask was recomputed.
    """

    def __init__(
        self,
        image: np.ndarray,
        model: "PromptableSam | None" = None,
        points: Sequence[Sequence[float]] | None = None,
        channel: int | None = 2,
        threshold: float = 0.5,
        interactive: bool | None = None,
        save_to: str | os.PathLike | None = None,
    ) -> None:
        import matplotlib.pyplot as plt

        self.image = np.asarray(image)
        self.model, self.threshold = model, threshold
        self.state = PromptState.from_defaults(points, size=self.image.shape[:2])
        self.mask: np.ndarray | None = None
        self.decodes = 0
        self.negative_mode = False
        self.save_to = Path(save_to) if save_to else None
        self.interactive = ipympl_active() if interactive is None else interactive
        self._embedding = None
        if model is not None:
            import torch

            with torch.inference_mode():
                model.eval()
                self._embedding = model.embed(self.image[None])  # once: clicks only re-decode
        self.fig, self.ax = plt.subplots(figsize=(5, 5))
        shown = self.image if channel is None or self.image.ndim == 2 else self.image[..., channel]
        self.ax.imshow(shown, cmap="gray")
        self.ax.set_axis_off()
        self._overlay = None
        self._markers: list[Any] = []
        self.state.on_change(lambda _: self.update())
        self.update()
        if self.interactive:
            self._cid = self.fig.canvas.mpl_connect("button_press_event", self._on_press)

    # ------------------------------------------------------------------ events
    def _on_press(self, event: Any) -> None:
        if event.inaxes is not self.ax or event.xdata is None or event.ydata is None:
            return
        toolbar = getattr(self.fig.canvas, "toolbar", None)
        if toolbar is not None and getattr(toolbar, "mode", ""):
            return  # zooming or panning, not clicking
        button = int(getattr(event.button, "value", event.button))
        if button not in (1, 3):
            return
        label = 0 if (button == 3 or self.negative_mode) else 1
        # imshow puts the centre of pixel i at i; the project at i + 0.5
        self.state.add(event.xdata + 0.5, event.ydata + 0.5, label)

    def set_negative(self, negative: bool) -> None:
        """What a left click adds: a negative point if True (the toggle), else a positive one."""
        self.negative_mode = bool(negative)

    def undo(self) -> None:
        self.state.undo()

    def clear(self) -> None:
        self.state.clear()

    # ------------------------------------------------------------------ drawing
    def predict(self) -> np.ndarray | None:
        """Decode the current points with the cached embedding."""
        if self.model is None:
            return None
        import torch

        coords, labels = self.state.as_arrays()
        with torch.inference_mode():  # with the model's own mask rule, as it was trained and scored
            out = self.model.decode(self._embedding, [coords], [labels])
        self.decodes += 1
        return out.masks(self.threshold)[0]

    def update(self) -> None:
        from samocta.viz import show_mask, show_points

        self.mask = self.predict()
        if self._overlay is not None:
            self._overlay.remove()
            self._overlay = None
        if self.mask is not None:
            self._overlay = show_mask(self.mask, self.ax)
        for artist in self._markers:
            artist.remove()
        coords, labels = self.state.as_arrays()
        self._markers = show_points(coords, labels, self.ax)
        self.ax.set_title(f"{self.state.labels.count(1)} positive, {self.state.labels.count(0)} negative", fontsize=9)
        self.fig.canvas.draw_idle()
        if self.save_to is not None:
            atomic_write_text(self.save_to, self.state.to_json())

    def controls(self) -> Any:
        """The ipywidgets row: Positive/Negative toggle, Undo, Clear (None if ipywidgets is missing)."""
        try:
            import ipywidgets as w
        except ImportError:
            return None
        toggle = w.ToggleButtons(options=["positive", "negative"], description="left click:")
        toggle.observe(lambda change: self.set_negative(change["new"] == "negative"), names="value")
        undo, clear = w.Button(description="Undo"), w.Button(description="Clear")
        undo.on_click(lambda _: self.undo())
        clear.on_click(lambda _: self.clear())
        return w.HBox([toggle, undo, clear])


def click_prompts(image: np.ndarray, model: "PromptableSam | None" = None, display_controls: bool = True, **options: Any) -> ClickPrompts:
    """Click prompt points on an image; with a model, the mask follows every click.

    Args (the options are ``ClickPrompts``'s):
        image: uint8 ``(H, W, 3)`` (OCTA layers in ``LAYERS`` order) or ``(H, W)``.
        model: a ``PromptableSam``/``LoRASam`` (or None: points only).
        points: default points ``[(x, y, label), ...]`` shown first (and all that a static page shows).
        channel: the image channel to show (2 = FULL); None shows the image as it is.
        threshold: on mask probabilities.
        interactive: connect clicks; default: when the ipympl backend is active.
        save_to: a JSON file rewritten with the points after every change (keeps clicked prompts).
        display_controls: show the toggle and buttons under the figure in a notebook.

    Returns:
        the ``ClickPrompts`` (``.state``, ``.mask``, ``.fig``).
    """
    clicker = ClickPrompts(image, model, **options)
    if clicker.interactive and display_controls:
        controls = clicker.controls()
        if controls is not None:
            from IPython.display import display

            display(controls)
    elif not clicker.interactive:
        print("Static figure: run '%matplotlib widget' (ipympl) for clicking; the default points are shown.")
    return clicker
