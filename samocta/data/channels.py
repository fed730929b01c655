"""How SAM's three input channels are filled from the projections a dataset has.

SAM takes an RGB image. SAM-OCTA fills its three channels with three OCTA projections, in the
order ``OPL_BM, ILM_OPL, FULL`` (onto SAM's R, G, B statistics). Much real OCTA comes with one
projection only (a public copy of OCTA-500 with ILM_OPL alone, ROSSA, a clinic's export of one
slab); it fills all three channels with that one. A run says which with its ``channels`` option,
saved in its ``config.json`` and in its adapters, shown on every table, and checked whenever an
adapter meets data:

- ``"auto"``: what the dataset has (its three projections, or its one projection repeated);
- one projection name, e.g. ``"ILM_OPL"``: that projection in all three channels;
- three comma-separated names, e.g. ``"OPL_BM,ILM_OPL,FULL"``: one per channel, repeats allowed.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from samocta.core.errors import DatasetError
from samocta.core.vocabulary import PAPER, parse_channels


class ChannelsError(DatasetError):
    """A channel names a projection the data does not have (``projections``: what it has)."""

    def __init__(self, message: str, projections: Sequence[str]) -> None:
        super().__init__(message)
        self.projections = tuple(projections)


def _missing(channels: Sequence[str], projections: Sequence[str]) -> list[str]:
    """The projections named in ``channels`` (each once) that are not among ``projections``."""
    return [name for name in dict.fromkeys(channels) if name not in projections]


def channels_text(channels: Sequence[str]) -> str:
    """The canonical option text: one name when all three channels are the same projection."""
    channels = tuple(channels)
    return channels[0] if len(set(channels)) == 1 else ",".join(channels)


def channels_label(channels: str | Sequence[str]) -> str:
    """How tables and figures name the channels: "OPL_BM, ILM_OPL, FULL" or "ILM_OPL ×3"."""
    parsed = parse_channels(channels) if isinstance(channels, str) else tuple(channels)
    if parsed is None:
        return "the dataset's own projections"
    return f"{parsed[0]} ×3" if len(set(parsed)) == 1 else ", ".join(parsed)


def auto_channels(projections: Sequence[str]) -> tuple[str, str, str]:
    """What "auto" means for a dataset with these projections: its three (the paper's order when they
    are OCTA-500's), or its one repeated.

    Raises:
        DatasetError: two projections, or more than three (the choice is the user's to make).
    """
    projections = tuple(projections)
    if len(projections) == 1:
        return (projections[0],) * 3
    if len(projections) == 3:
        return PAPER if set(projections) == set(PAPER) else (projections[0], projections[1], projections[2])
    raise DatasetError(
        f"the dataset has {len(projections)} projections ({', '.join(projections)}): choose what fills SAM's three "
        "channels with --channels (one name, repeated, or three names separated by commas)"
    )


def resolve_channels(spec: str | Sequence[str] | None, projections: Sequence[str], where: str) -> tuple[str, str, str]:
    """The channels a run uses on a dataset with ``projections``, checked against them.

    Args:
        spec: a ``channels`` option (None or "auto": ``auto_channels``).
        projections: the projection names the dataset has.
        where: the dataset, for the message.

    Raises:
        DatasetError: a named projection the dataset does not have (the message lists what it has).
    """
    parsed = None if spec is None else parse_channels(spec)
    if parsed is None:
        return auto_channels(projections)
    missing = _missing(parsed, projections)
    if missing:
        raise ChannelsError(
            f"{where} has no {', '.join(missing)} projection (it has {', '.join(projections) or 'none'}); choose "
            f"--channels among them, or name the projections in a dataset.json beside the images "
            '({"projections": [...]})', projections
        )
    return parsed


def check_adapter_channels(trained: Sequence[str], projections: Sequence[str], where: str) -> None:
    """Refuse to use an adapter on data that lacks a projection the adapter was trained with.

    Raises:
        DatasetError: naming what the adapter needs, what the data has, and the fix.
    """
    missing = _missing(trained, projections)
    if missing:
        raise ChannelsError(
            f"the adapter was trained with channels {channels_label(tuple(trained))}, but {where} has no "
            f"{', '.join(missing)} (it has {', '.join(projections) or 'none'}); name its projections in a "
            'dataset.json beside the images ({"projections": [...]}) if they are these, or use an adapter trained '
            f"with channels {channels_text(auto_channels(projections)) if len(projections) in (1, 3) else 'of this data'}",
            projections
        )


def fill_channels(projections: Mapping[str, np.ndarray], channels: Sequence[str]) -> np.ndarray:
    """Stack projections into SAM's three channels.

    Args:
        projections: name -> uint8 ``(H, W)``.
        channels: three names (``parse_channels``).

    Returns:
        uint8 ``(H, W, 3)``.
    """
    return np.stack([projections[name] for name in channels], axis=-1)
