"""A stage's public face: the names its ``__init__`` offers, each imported from its module on first use.

A stage's modules pull in torch, pandas or matplotlib; importing a name through the face imports only
the module that defines it, so ``python -m samocta --help`` and ``import samocta.data`` stay quick.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Sequence


def lazy_face(package: str, homes: Mapping[str, Sequence[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The ``__getattr__``, ``__dir__`` and ``__all__`` of a package whose names live in its modules.

    Args:
        package: the package's ``__name__``.
        homes: module -> the names it gives the face; a module is named relative to the package
            (``"fold"``) or in full (``"samocta.config"``, for a name another layer defines).

    Returns:
        ``(__getattr__, __dir__, __all__)`` to assign in the package's ``__init__``.
    """
    where = {name: module if module.startswith("samocta.") else f"{package}.{module}"
             for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__, list(where)
