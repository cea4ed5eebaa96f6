"""Adapters: one per HTTP library, each converting that library's objects for the engine."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable

__all__ = ["install", "uninstall"]

Undo = Callable[[], None]

# (library, adapter module, patch it only if the library is imported already)
_ADAPTERS: tuple[tuple[str, str, bool], ...] = (
    ("httpx", "._httpx", False),
    ("httpx2", "._httpx", False),
    ("httpx", "._guard", False),
    ("httpx2", "._guard", False),
    ("requests", "._requests", False),
    ("urllib3", "._urllib3", False),
    ("http.client", "._http_client", False),
    ("aiohttp", "._aiohttp", False),
    ("socket", "._socket", False),
    # Last: it follows the methods patched above. vcrpy imported later copies the patched
    # methods by itself, so an installed but unused vcrpy is never imported here.
    ("vcr", "._vcrpy", True),
)

_undo: list[Undo] = []
_installed = False


def install() -> None:
    """Patch every supported HTTP library that is installed (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    from .. import _current

    _current.install()
    _undo.append(_current.uninstall)
    for library, adapter, only_if_imported in _ADAPTERS:
        if only_if_imported and library not in sys.modules:
            continue
        if importlib.util.find_spec(library) is None:
            continue
        try:
            module = importlib.import_module(adapter, __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{adapter[1:]}":
                raise
            continue  # an adapter this version does not ship
        undo = module.patch(importlib.import_module(library))
        if undo is not None:
            _undo.append(undo)


def uninstall() -> None:
    """Restore every patched method."""
    global _installed
    while _undo:
        _undo.pop()()
    _installed = False
