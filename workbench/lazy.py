"""Public names of a stage folder, imported on first use so `workbench --help` and light commands stay fast."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def exports(package: str, modules: dict[str, list[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``, whose public names live in ``modules``.

    ``modules`` maps a submodule's short name to the names it provides: ``{"ingest": ["ingest_to"]}``.
    """
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}
    public = sorted(where)

    def getattr_(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(module), name)

    def dir_() -> list[str]:
        return public

    return getattr_, dir_, public
