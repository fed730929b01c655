"""The words of OCTA every layer shares: the tasks, the fields of view, the projections, a scan's width.

An adapter records which task it segments, which projections fill SAM's channels and how wide its
training scans were; the model checks those records with these rules and the data reads and writes
with the same ones, so neither needs the other. What a dataset holds and how it is read lives in
``samocta.data``.
"""

from __future__ import annotations

import typing
from typing import Literal, Sequence

from samocta.core.errors import DatasetError

Task = Literal["RV", "FAZ", "Capillary", "Artery", "Vein"]
TASKS: tuple[str, ...] = typing.get_args(Task)
Fov = Literal["3M", "6M"]
FOVS: tuple[str, ...] = typing.get_args(Fov)
# The paper's channel order: outer retina, inner retina, full depth -> SAM's R, G, B statistics.
PAPER = ("OPL_BM", "ILM_OPL", "FULL")
AUTO = "auto"

# The scan widths the package takes, in mm: OCTA scans run from 2 x 2 mm to the 12 x 12 and 15 x 15 mm
# of wide-field devices; a width outside this range is a typo (or the height in pixels), and would
# resample every scan to a few pixels or to gigabytes.
FOV_MM_RANGE = (1.0, 20.0)


def check_fov_mm(value: object, where: str) -> float | None:
    """A scan width in mm from an option, a ``dataset.json`` or an adapter's metadata, checked.

    Args:
        value: the width (a number, or text that reads as one), or None (unknown).
        where: what gave it, for the message ("--fov-mm", "<path>: fov_mm", ...).

    Returns:
        the width as a float, or None.

    Raises:
        DatasetError: not a finite number within ``FOV_MM_RANGE``.
    """
    if value is None:
        return None
    lo, hi = FOV_MM_RANGE
    try:
        width = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        width = float("nan")
    if not lo <= width <= hi:  # NaN fails both comparisons
        raise DatasetError(f"{where} is the scans' width in mm, {lo:g} to {hi:g} (3 for a 3 x 3 mm scan); got {value!r}")
    return width


def parse_channels(spec: str | Sequence[str]) -> tuple[str, str, str] | None:
    """The three projection names a ``channels`` option fills SAM's channels with (None for "auto").

    Raises:
        DatasetError: not "auto", one name or three names.
    """
    if isinstance(spec, str):
        if spec.strip().lower() == AUTO:
            return None
        names = [n.strip() for n in spec.split(",")]
    else:
        names = [str(n).strip() for n in spec]
    if len(names) not in (1, 3) or not all(names):
        raise DatasetError(
            f"channels (--channels) is 'auto', one projection name (repeated in SAM's three channels) or three names "
            f"separated by commas (e.g. {','.join(PAPER)}); got {spec!r}"
        )
    return (names[0],) * 3 if len(names) == 1 else (names[0], names[1], names[2])
