"""Subject ids: OCTA-500's numbers (10001-10500) or a folder dataset's file stems ("0042", "patient_A_OD").

An id is an ``int`` for OCTA-500 trees and a ``str`` (the file stem, exactly as on disk) for folder
datasets, so that a mask written for a subject carries the name its scan has. Every random choice
keyed by a subject (its fixed evaluation prompt, its augmentation, its prompts per epoch) takes
``id_seed(id)``: the number itself for OCTA-500, and for a stem of ASCII digits the same number, so
that a folder copy of OCTA-500 (stems "10301", ...) draws exactly the prompts the release tree does;
any other stem is hashed (SHA-256), the same in every process.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from typing import Iterable, Union

SampleId = Union[int, str]
_DIGITS = re.compile(r"(\d+)")


def id_seed(sample_id: SampleId) -> int:
    """The non-negative integer every per-subject random stream is keyed with."""
    if isinstance(sample_id, numbers.Integral) and not isinstance(sample_id, bool):
        return int(sample_id)
    text = str(sample_id)
    if text.isascii() and text.isdigit():
        return int(text)
    # 2**62 and up: never an OCTA-500 id, nor a stem of up to 18 digits
    return (1 << 62) + int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")


def id_sort_key(sample_id: SampleId) -> tuple:
    """Natural order: "2" before "10", "scan_9" before "scan_10"; integers by value."""
    if isinstance(sample_id, numbers.Integral):
        return (0, int(sample_id))
    return (1, tuple((0, int(part), "") if part.isdecimal() else (1, 0, part) for part in _DIGITS.split(sample_id) if part))


def sorted_ids(ids: Iterable[SampleId]) -> list[SampleId]:
    """Unique ids in natural order (numpy integers become ints)."""
    return sorted({int(i) if isinstance(i, numbers.Integral) else i for i in ids}, key=id_sort_key)


def parse_id(text: str, known: Iterable[SampleId]) -> SampleId | None:
    """The id among ``known`` that ``text`` (from a command line or a JSON key) names, or None."""
    known = list(known)
    if text in known:
        return text
    if text.isascii() and text.isdigit() and int(text) in known:
        return int(text)
    return None
