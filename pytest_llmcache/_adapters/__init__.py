"""Adapters: one per HTTP library, each converting that library's objects for the engine."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

__all__ = ["install", "installed", "uninstall"]

Undo = Callable[[], None]

# (module to import, adapter module, function that patches it)
_ADAPTERS: tuple[tuple[str, str], ...] = (
    ("httpx", "._httpx"),
    ("httpx2", "._httpx"),
    ("httpx", "._guard"),
    ("httpx2", "._guard"),
    ("requests", "._requests"),
    ("aiohttp", "._aiohttp"),
    # Last: it follows the methods patched above.
    ("vcr", "._vcrpy"),
)

_undo: list[Undo] = []
_installed = False


def install() -> None:
    """Patch every supported HTTP library that is installed (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    for library, adapter in _ADAPTERS:
        if importlib.util.find_spec(library) is None:
            continue
        module = importlib.import_module(adapter, __name__)
        undo = module.patch(importlib.import_module(library))
        if undo is not None:
            _undo.append(undo)


def installed() -> bool:
    """Whether the patches are in place."""
    return _installed


def uninstall() -> None:
    """Restore every patched method."""
    global _installed
    while _undo:
        _undo.pop()()
    _installed = False
