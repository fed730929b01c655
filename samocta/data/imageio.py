"""Reading and writing 8-bit en-face images: OCTA-500's (BMP with a grey palette, or PNG) and a folder dataset's
(PNG, BMP, TIFF, JPEG; grey, or RGB holding three projections)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from samocta.core.errors import DatasetError
from samocta.core.files import atomic_write

IMAGE_SUFFIXES = (".bmp", ".png")  # what OCTA-500 trees hold
# what a folder dataset may hold (JPEG is lossy: fine for images, refused for labels by their values)
FOLDER_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
# The largest image side read: OCTA-500 projections are 304 (3M) or 400 px (6M); 2048 px leaves
# room for other devices' en-face images while a run's memory stays bounded (SAM resizes to 1024).
MAX_IMAGE_SIDE = 2048


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit grey image, whatever its storage mode.

    OCTA-500 stores projections and labels as 8-bit BMPs with an identity grey palette (PIL mode
    ``P`` or ``L``); copies circulating elsewhere are PNG, sometimes RGB with equal channels.

    Args:
        path: an image file (BMP, PNG, TIFF or JPEG).

    Returns:
        uint8 array ``(H, W)``.

    Raises:
        DatasetError: the file is missing, unreadable, or not a single-channel-equivalent image.
    """
    array = read_image(path)
    if array.ndim == 3:
        raise DatasetError(f"{path}: colour image with unequal channels; expected an 8-bit grey image")
    return array


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit en-face image: grey ``(H, W)``, or ``(H, W, 3)`` when its colour channels differ.

    An RGB image whose three channels are equal is a grey image stored as colour, and reads as
    ``(H, W)``; one whose channels differ holds three projections (a folder dataset's RGB image).

    Raises:
        DatasetError: missing, unreadable, larger than ``MAX_IMAGE_SIDE``, more than 8 bits per
            pixel, or a multi-page file (a stack), each naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():  # a FIFO or a device would block or stream for ever
            raise DatasetError(f"{path}: not a regular file (a FIFO, a device, a folder); replace it with the image file")
        raise DatasetError(f"missing file: {path}")
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_IMAGE_SIDE:  # read the header only: refuse before decoding
                raise DatasetError(
                    f"{path}: {img.size[0]} x {img.size[1]} px, larger than the {MAX_IMAGE_SIDE} px per side this "
                    "package reads (OCTA-500 projections are 304 or 400 px); resize the image first"
                )
            if getattr(img, "n_frames", 1) > 1:
                raise DatasetError(f"{path}: {img.n_frames} pages (a stack); save one en-face projection per file")
            img.load()
            mode = img.mode
            if mode in ("L", "P", "1", "LA", "PA"):
                return np.asarray(img.convert("L"), dtype=np.uint8).copy()
            if mode in ("RGB", "RGBA"):
                rgb = np.ascontiguousarray(np.asarray(img.convert("RGB")))
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                    return np.ascontiguousarray(rgb[..., 0])
                return rgb
            if mode.startswith("I") or mode == "F":
                raise DatasetError(
                    f"{path}: {mode} image (more than 8 bits per pixel); export it as an 8-bit grey image"
                )
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except DatasetError:
        raise
    except Image.DecompressionBombError:  # PIL refuses before we can read the size: same answer
        raise DatasetError(
            f"{path}: over 179 million pixels, larger than the {MAX_IMAGE_SIDE} px per side this package reads "
            "(OCTA-500 projections are 304 or 400 px); resize the image first"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: unreadable image ({exc}); expected an 8-bit grey image (BMP, PNG, TIFF)") from exc


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` of an image from its header alone (None if the file cannot be read: ``read_image`` says why)."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


FORMATS = {".bmp": "BMP", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def write_grey(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` array as an 8-bit grey image, or ``(H, W, 3)`` as RGB, atomically.

    The format follows the suffix: ``.bmp`` gives the same 8-bit palette BMP as OCTA-500
    (54-byte header, 1,024-byte grey palette), ``.png`` an 8-bit PNG, ``.tif`` an uncompressed
    TIFF, ``.jpg`` a JPEG at quality 95 (lossy: for images, never for labels).

    Args:
        path: destination with one of the suffixes above.
        array: uint8 ``(H, W)`` or ``(H, W, 3)``; a bool array is written as {0, 255}.
    """
    path = Path(path)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 3)):
        raise ValueError(f"write_grey expects a uint8 (H, W) or (H, W, 3) array, got {array.dtype} {array.shape}")
    fmt = FORMATS[path.suffix.lower()]
    mode = "L" if array.ndim == 2 else "RGB"
    options = {"quality": 95} if fmt == "JPEG" else {}
    # images come in bulk and can be made again (synthetic trees, predicted masks): no disk flush
    # per file (it made writing a synthetic tree a third slower); the rename keeps them whole
    atomic_write(path, lambda fh: Image.fromarray(array, mode=mode).save(fh, format=fmt, **options), sync=False)
