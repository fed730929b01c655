"""Reading and writing the 8-bit images of OCTA-500 (BMP with a grey palette, or PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from samocta.errors import DatasetError
from samocta.files import atomic_write

IMAGE_SUFFIXES = (".bmp", ".png")
# The largest image side read: OCTA-500 projections are 304 (3M) or 400 px (6M); 2048 px leaves
# room for other devices' en-face images while a run's memory stays bounded (SAM resizes to 1024).
MAX_IMAGE_SIDE = 2048


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit grey image, whatever its storage mode.

    OCTA-500 stores projections and labels as 8-bit BMPs with an identity grey palette (PIL mode
    ``P`` or ``L``); copies circulating elsewhere are PNG, sometimes RGB with equal channels.

    Args:
        path: a ``.bmp`` or ``.png`` file.

    Returns:
        uint8 array ``(H, W)``.

    Raises:
        DatasetError: the file is missing, unreadable, or not a single-channel-equivalent image.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_IMAGE_SIDE:  # read the header only: refuse before decoding
                raise DatasetError(
                    f"{path}: {img.size[0]} x {img.size[1]} px, larger than the {MAX_IMAGE_SIDE} px per side this "
                    "package reads (OCTA-500 projections are 304 or 400 px); resize the image first"
                )
            img.load()
            mode = img.mode
            if mode in ("L", "P", "1", "LA", "PA"):
                grey = img.convert("L")
            elif mode in ("RGB", "RGBA"):
                rgb = np.asarray(img.convert("RGB"))
                if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                    raise DatasetError(
                        f"{path}: colour image (mode {mode}) with unequal channels; "
                        "expected an 8-bit grey BMP or PNG"
                    )
                return np.ascontiguousarray(rgb[..., 0])
            elif mode in ("I;16", "I;16B", "I", "F"):
                raise DatasetError(
                    f"{path}: {mode} image (more than 8 bits per pixel); expected an 8-bit grey BMP or PNG"
                )
            else:
                grey = img.convert("L")
            return np.asarray(grey, dtype=np.uint8).copy()
    except DatasetError:
        raise
    except Image.DecompressionBombError:  # PIL refuses before we can read the size: same answer
        raise DatasetError(
            f"{path}: over 179 million pixels, larger than the {MAX_IMAGE_SIDE} px per side this package reads "
            "(OCTA-500 projections are 304 or 400 px); resize the image first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: unreadable image ({exc}); expected an 8-bit grey BMP or PNG") from exc


def write_grey(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` array as an 8-bit grey image, atomically.

    The format follows the suffix: ``.bmp`` gives the same 8-bit palette BMP as OCTA-500
    (54-byte header, 1,024-byte grey palette), ``.png`` an 8-bit grey PNG.

    Args:
        path: destination ending in ``.bmp`` or ``.png``.
        array: uint8 ``(H, W)``; a bool array is written as {0, 255}.
    """
    path = Path(path)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"write_grey expects a uint8 (H, W) array, got {array.dtype} {array.shape}")
    fmt = {".bmp": "BMP", ".png": "PNG"}[path.suffix.lower()]
    # images come in bulk and can be made again (synthetic trees, predicted masks): no disk flush
    # per file (it made writing a synthetic tree a third slower); the rename keeps them whole
    atomic_write(path, lambda fh: Image.fromarray(array, mode="L").save(fh, format=fmt), sync=False)
