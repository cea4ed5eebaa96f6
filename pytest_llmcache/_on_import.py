"""Run code right after a module is first imported, before its importer can use it.

Patching a library only once a suite imports it spares the suites that never do the cost of
importing it just to patch it (aiohttp or requests: a quarter of a second; asyncio: ten
milliseconds).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["when_imported"]


def when_imported(waiting: Mapping[str, Sequence[Callable[[], None]]]) -> Callable[[], None]:
    """Call each module's functions now if it is imported, or else right after its first
    import; return the function that stops watching (for modules not imported by then)."""
    later: dict[str, list[Callable[[], None]]] = {}
    for name, functions in waiting.items():
        if name in sys.modules:
            for function in functions:
                function()
        else:
            later[name] = list(functions)
    if not later:
        return _nothing
    watcher = _Watcher(later)
    sys.meta_path.insert(0, watcher)
    return watcher.remove


def _nothing() -> None:
    """Nothing to stop watching."""


class _Watcher:
    """A finder that gives a watched module its own spec, with a loader that then calls the
    module's functions (a finder and a loader by their methods: the ABCs cost more)."""

    def __init__(self, waiting: dict[str, list[Callable[[], None]]]) -> None:
        self.waiting = waiting

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """The module's own spec, with a loader that calls its functions once it ran."""
        if fullname not in self.waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenCall(spec.loader, self)  # type: ignore[assignment]
        return spec

    def loaded(self, fullname: str) -> None:
        """``fullname`` has just run: call its functions (once)."""
        for function in self.waiting.pop(fullname, []):
            function()

    def remove(self) -> None:
        """Stop watching imports."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)


class _ThenCall:
    """A module's own loader, then the watcher's functions for it."""

    def __init__(self, loader: Any, watcher: _Watcher) -> None:
        self._loader = loader
        self._watcher = watcher

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        """As the module's loader does."""
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Run the module, then its functions."""
        self._loader.exec_module(module)
        self._watcher.loaded(module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
