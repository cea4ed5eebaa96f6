"""Adapters: one per HTTP library, each converting that library's objects for the engine.

A library already imported is patched when the cache turns on; one imported later is patched
as its import finishes, so a suite pays only for the libraries it uses (importing aiohttp or
requests just to patch them would cost a suite that never calls them a quarter of a second).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable

from .. import _on_import

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
    ("websockets", "._websockets", False),
    ("socket", "._socket", False),
    # Last: it follows the methods patched above. vcrpy imported later copies the patched
    # methods by itself, so an installed but unused vcrpy is never imported here.
    ("vcr", "._vcrpy", True),
)

_undo: list[Undo] = []
_installed = False


def install() -> None:
    """Patch every supported HTTP library now or when it is imported (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    from .. import _current

    _current.install()
    _undo.append(_current.uninstall)
    # In the table's order: each library's adapters, patched now or once it is imported.
    waiting: dict[str, list[Callable[[], None]]] = {}
    for library, adapter, only_if_imported in _ADAPTERS:
        if library in sys.modules or not only_if_imported:
            waiting.setdefault(library, []).append(functools.partial(_patch, library, adapter))
    _undo.append(_on_import.when_imported(waiting))


def uninstall() -> None:
    """Restore every patched method, and stop patching libraries as they are imported."""
    global _installed
    while _undo:
        _undo.pop()()
    _installed = False


def _patch(library: str, adapter: str) -> None:
    try:
        module = importlib.import_module(adapter, __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{adapter[1:]}":
            raise
        return  # an adapter this version does not ship
    undo = module.patch(sys.modules[library])
    if undo is not None:
        _undo.append(undo)
