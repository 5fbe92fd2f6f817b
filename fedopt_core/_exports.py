"""Lazy re-exports for the packages' ``__init__`` files (PEP 562), in one place.

A package names its public API by module; a name is imported the first time someone asks for
it, so ``import fedopt_core.runs.tracking`` does not also load the CSV import, the catalogues
and scipy.  Submodules are reachable as attributes too (``catalog.gpus``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``: ``exports`` maps a module to its names."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module attribute hook's name is fixed by PEP 562
        module = where.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        else:
            try:
                value = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the same, for dir()
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__, sorted(where)
