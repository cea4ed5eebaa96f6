"""Adapters: one per HTTP library, each converting that library's objects for the engine.

A library already imported is patched when the cache turns on; one imported later is patched
as its import finishes, so a suite pays only for the libraries it uses (importing aiohttp or
requests just to patch them would cost a suite that never calls them a quarter of a second).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

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
    waiting: dict[str, list[str]] = {}
    for library, adapter, only_if_imported in _ADAPTERS:
        if library in sys.modules:
            _patch(library, adapter)
        elif not only_if_imported:
            waiting.setdefault(library, []).append(adapter)
    if waiting:
        finder = _PatchOnImport(waiting)
        sys.meta_path.insert(0, finder)
        _undo.append(finder.remove)


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


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a supported library right after its module is executed, on first import."""

    def __init__(self, waiting: dict[str, list[str]]) -> None:
        self.waiting = waiting

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """The library's own spec, with a loader that patches it once it is loaded."""
        adapters = self.waiting.get(fullname)
        if adapters is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenPatch(spec.loader, fullname, self)
        return spec

    def loaded(self, fullname: str) -> None:
        """``fullname`` was just imported: patch it."""
        for adapter in self.waiting.pop(fullname, []):
            _patch(fullname, adapter)

    def remove(self) -> None:
        """Stop watching imports."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)


class _ThenPatch(importlib.abc.Loader):
    """A library's own loader, then the patch."""

    def __init__(self, loader: Any, fullname: str, finder: _PatchOnImport) -> None:
        self._loader = loader
        self._fullname = fullname
        self._finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """As the library's loader does."""
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Run the library's module, then patch it."""
        self._loader.exec_module(module)
        self._finder.loaded(self._fullname)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
