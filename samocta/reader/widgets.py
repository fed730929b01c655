"""Clicking prompt points on an image in a notebook, with the mask following each click.

``PromptState`` (``samocta.decode.session``) is the pure model of the points (no UI). ``click_prompts`` shows a click canvas
(an anywidget, so it runs in JupyterLab, Notebook 7, VS Code and Colab alike): left click adds a
positive point, right click a negative one (or the positive/negative toggle, for touchpads), with
Undo and Clear. The canvas sends each action to the kernel, ``PromptState`` applies it, and the mask
is decoded in Python from the image embedding computed once, with the model's own mask rule, then
drawn in the browser. In the rendered book there is no kernel: the same front end decodes in the
page with onnxruntime-web, from the decoder exported by ``samocta.model.export`` and the embedding
computed at build time (``browser_dir``/``browser_url``), and says which of the two decodes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from samocta.core.files import atomic_write_text
from samocta.decode.session import PromptState

if TYPE_CHECKING:
    from samocta.model import PromptableSam


ESM = Path(__file__).resolve().parent.parent / "assets" / "click_canvas.js"
MASK_RGBA = (30, 144, 255, 110)  # the overlay colour, as the front end draws the browser's masks


def png_data_url(pixels: np.ndarray) -> str:
    """A PNG data URL of uint8 ``(H, W)`` grey or ``(H, W, 4)`` RGBA pixels."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_data_url(mask: np.ndarray) -> str:
    """The mask as a transparent PNG overlay (``MASK_RGBA`` where the mask is set)."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = MASK_RGBA
    return png_data_url(rgba)


_CANVAS_CLASS = None


def canvas_class() -> type:
    """The anywidget class of the click canvas (made on first use: importing this module needs no widgets)."""
    global _CANVAS_CLASS
    if _CANVAS_CLASS is None:
        import anywidget
        import traitlets

        class ClickCanvas(anywidget.AnyWidget):
            """The browser side: image, points and mask; clicks come back as messages."""

            _esm = ESM
            image = traitlets.Unicode("").tag(sync=True)
            width = traitlets.Int(0).tag(sync=True)
            height = traitlets.Int(0).tag(sync=True)
            points = traitlets.List([]).tag(sync=True)
            mask = traitlets.Unicode("").tag(sync=True)
            status = traitlets.Unicode("").tag(sync=True)

        _CANVAS_CLASS = ClickCanvas
    return _CANVAS_CLASS


class ClickPrompts:
    """An image to click prompts on; see ``click_prompts``.

    Attributes:
        state: the ``PromptState`` (the model of the points: the canvas only sends actions to it).
        mask: the latest predicted mask, bool ``(H, W)`` (None without a model or without points).
        widget: the click canvas (an anywidget).
        decodes: how many times the mask was decoded from the one embedding.
        latency_ms: the last decode's time in Python.
    """

    def __init__(
        self,
        image: np.ndarray,
        model: "PromptableSam | None" = None,
        points: Sequence[Sequence[float]] | None = None,
        channel: int | None = 2,
        threshold: float = 0.5,
        save_to: str | os.PathLike | None = None,
        browser_dir: str | os.PathLike | None = None,
        browser_url: str = "",
        name: str = "subject",
        pixel_um: float | None = None,
    ) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must lie between 0 and 1, got {threshold}")
        self.image = np.asarray(image)
        self.model, self.threshold = model, threshold
        self.state = PromptState.from_defaults(points, size=self.image.shape[:2])
        self.default_points = [list(p) for p in points or []]
        self.mask: np.ndarray | None = None
        self.decodes = 0
        self.latency_ms = 0.0
        self.save_to = Path(save_to) if save_to else None
        self.name = name
        self._embedding = None
        if model is not None:
            import torch

            from samocta.decode.views import scan_views

            with torch.inference_mode():
                model.eval()
                # once: clicks only re-decode; a scan of another pixel size than the adapter's training
                # images is shown to it as predict and evaluate show it (samocta.decode.resample)
                self._resampling, self._embeddings = scan_views(model, self.image, pixel_um, "the image")
                self._embedding = self._embeddings[0]
            from samocta.decode.session import ClickSession

            self._session = ClickSession(model, self._resampling, self._embeddings)
        shown = self.image if channel is None or self.image.ndim == 2 else self.image[..., channel]
        self._image_url = png_data_url(shown.astype(np.uint8))
        self.widget = canvas_class()(image=self._image_url, width=int(self.image.shape[1]), height=int(self.image.shape[0]),
                                     status=self._status())
        self.widget.on_msg(self._on_message)
        self.browser = self._export_for_browser(Path(browser_dir), browser_url) if browser_dir and model is not None else None
        self.state.on_change(lambda _: self.update())
        self.update()

    def _status(self) -> str:
        if self.model is None:
            return "no model: points only"
        device = next(self.model.parameters()).device
        return f"decoded in Python by the kernel ({getattr(self.model, 'model_type', 'SAM')} on {device})"

    # ------------------------------------------------------------------ actions from the canvas
    def _on_message(self, widget: Any, content: dict, buffers: Any = None) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        try:
            if kind == "add":
                self.state.add(float(content["x"]), float(content["y"]), int(content["label"]))
            elif kind == "undo":
                self.state.undo()
            elif kind == "clear":
                self.state.clear()
        except (KeyError, TypeError, ValueError) as exc:  # a click off the image: say so, keep the points
            self.widget.status = f"{self._status()}; ignored: {exc}"

    def add(self, x: float, y: float, label: int = 1) -> None:
        """What a click does: add a point (``(x, y)`` image pixels, pixel centres at ``i + 0.5``)."""
        self._on_message(self.widget, {"kind": "add", "x": x, "y": y, "label": label})

    def undo(self) -> None:
        self._on_message(self.widget, {"kind": "undo"})

    def clear(self) -> None:
        self._on_message(self.widget, {"kind": "clear"})

    # ------------------------------------------------------------------ decoding
    def predict(self) -> np.ndarray | None:
        """Decode the current points with the cached embedding (None without a model or points)."""
        if self.model is None or not self.state.points:
            return None
        from samocta.model.promptable import binarize

        coords, labels = self.state.as_arrays()
        t0 = time.perf_counter()
        # the clicks in their order, each decode given the one before (samocta.evaluate.clicks), with the model's own
        # mask rule: as predict decodes saved clicks and as corrective clicks are scored
        logits = self._session.decode(coords, labels)
        mask = binarize(logits, self.threshold)[0]
        self.latency_ms = (time.perf_counter() - t0) * 1000
        self.decodes += 1
        return mask

    def update(self) -> None:
        self.mask = self.predict()
        with self.widget.hold_sync():
            self.widget.points = [[x, y, label] for (x, y), label in zip(self.state.points, self.state.labels)]
            self.widget.mask = mask_data_url(self.mask) if self.mask is not None else ""
            self.widget.status = self._status()
        if self.save_to is not None:
            atomic_write_text(self.save_to, self.state.to_json())

    # ------------------------------------------------------------------ the rendered book
    def _export_for_browser(self, folder: Path, url: str) -> dict:
        """Write the decoder (ONNX) and this image's embedding for the page's browser decoder."""
        from samocta.core.errors import InputError
        from samocta.core.files import atomic_write_bytes
        from samocta.model.export import export_decoder_onnx

        if not self._resampling.identity:
            raise InputError(f"the browser decoder decodes one image at the adapter's own size and pixel size; this one is "
                             f"{self._resampling.describe()}: click it in a live notebook, or use a scan of the adapter's size")
        folder.mkdir(parents=True, exist_ok=True)
        decoder = export_decoder_onnx(self.model, folder / "decoder.onnx", self.image.shape[:2])
        features = self._embedding.features.detach().float().cpu().numpy()
        embedding = folder / f"embedding-{self.name}.bin"
        atomic_write_bytes(embedding, features.astype("<f4").tobytes())
        base = url.rstrip("/")
        return {
            "width": int(self.image.shape[1]), "height": int(self.image.shape[0]), "imageUrl": self._image_url,
            "embeddingUrl": f"{base}/{embedding.name}", "embeddingShape": list(features.shape),
            "decoderUrl": f"{base}/{decoder.name}", "ortUrl": f"{base}/ort.wasm.bundle.min.mjs",
            "wasmUrl": f"{base}/ort-wasm-simd-threaded.wasm", "points": self.default_points,
            "logitThreshold": math.log(self.threshold / (1 - self.threshold)), "moduleUrl": f"{base}/click_canvas.js",
            # the kernel's click rule (samocta.decode.session.ClickSession): feed the previous logits back or not
            "feedback": bool(self._session.feedback), "lowResShape": [1, 1, *self._low_res_side()],
        }

    def _low_res_side(self) -> tuple[int, int]:
        side = 4 * int(self.model.sam.prompt_encoder.image_embedding_size[0])
        return side, side

    def static_html(self) -> str:
        """The page's version: the same front end, decoding with onnxruntime-web (no kernel)."""
        if self.browser is None:
            return ""
        element = f"samocta-click-{self.name}"
        config = json.dumps(self.browser)
        return (
            f'<div id="{element}"><img src="{self._image_url}" alt="OCTA image for clicking prompts (loading the browser '
            f'decoder)" style="width:456px;max-width:100%"></div>\n'
            f'<script type="module">\nimport {{ renderStatic }} from "{self.browser["moduleUrl"]}";\n'
            f'renderStatic(document.getElementById("{element}"), {config});\n</script>'
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict]:
        """The widget for a live front end, and the page's HTML for a rendered page (no kernel)."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = {**data, "text/plain": f"click canvas: {len(self.state.points)} points; {self._status()}"}
        html = self.static_html()
        return ({**data, "text/html": html} if html else data), metadata


def click_prompts(image: np.ndarray, model: "PromptableSam | None" = None, display: bool = True, **options: Any) -> ClickPrompts:
    """Click prompt points on an image; with a model, the mask follows every click.

    Args (the options are ``ClickPrompts``'s):
        image: uint8 ``(H, W, 3)`` (OCTA layers in ``LAYERS`` order) or ``(H, W)``.
        model: a ``PromptableSam``/``LoRASam`` (or None: points only).
        points: default points ``[(x, y, label), ...]`` shown first.
        channel: the image channel to show (2 = FULL); None shows the image as it is.
        threshold: on mask probabilities.
        save_to: a JSON file rewritten with the points after every change, in the format
            ``python -m samocta predict --prompts`` reads.
        browser_dir, browser_url: where to write the browser decoder and this image's embedding, and
            the URL the rendered page finds them at (the book's build sets both).
        name: the image's name in those files.
        pixel_um: the image's pixel size in µm: an image of another pixel size than the adapter's
            training images is decoded at the adapter's scale, as ``predict`` decodes it.
        display: show the canvas when running in a notebook.

    Returns:
        the ``ClickPrompts`` (``.state``, ``.mask``, ``.widget``).
    """
    clicker = ClickPrompts(image, model, **options)
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import display as show
        except ImportError:
            return clicker
        if get_ipython() is not None:
            if "google.colab" in sys.modules:  # Colab shows third-party widgets once this is on
                from google.colab import output  # type: ignore[import-not-found]

                output.enable_custom_widget_manager()
            show(clicker)
    return clicker
