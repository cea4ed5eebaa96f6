"""pytest-llmcache: record LLM API calls once, replay them in every test run."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._block import cassette
    from ._cassette import Cassette, CassetteError, Entry
    from ._engine import TestCache
    from ._errors import CacheMiss, CacheRefusal, ReplayMiss
    from ._exchange import Request, Response
    from ._fixtures import cached
    from ._settings import Mode, Settings
    from ._stats import Counts

__all__ = [
    "CacheMiss",
    "CacheRefusal",
    "Cassette",
    "CassetteError",
    "Counts",
    "Entry",
    "Mode",
    "ReplayMiss",
    "Request",
    "Response",
    "Settings",
    "TestCache",
    "__version__",
    "cached",
    "cassette",
]

__version__ = "0.1.0"

# Loaded on first use: pytest imports this package with the plugin, and a run with no
# cached test should not pay for the cache's modules.
_HOMES = {
    "Cassette": "._cassette",
    "CassetteError": "._cassette",
    "Entry": "._cassette",
    "ReplayMiss": "._errors",
    "CacheMiss": "._errors",
    "CacheRefusal": "._errors",
    "cassette": "._block",
    "cached": "._fixtures",
    "TestCache": "._engine",
    "Request": "._exchange",
    "Response": "._exchange",
    "Mode": "._settings",
    "Settings": "._settings",
    "Counts": "._stats",
}


def _imported_as_compiled() -> None:
    """Have pytest leave this package's modules to Python's own import, from their bytecode.

    pytest rewrites the asserts of every module of a plugin's distribution (the plugin's
    own assertions then read like a test's), which parses and compiles each module from
    source, and keeps the result only where it may write bytecode: a fresh CI machine pays
    it on every run, about 200 ms for the modules a replay imports. No test relies on an
    assert of this package. Done as the package is imported, which pytest does after it
    marked the package (loading the ``pytest11`` entry point, or ``-p``), and before any
    other of its modules is imported; a pytest without that hook is left as it is.
    """
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        decided = getattr(finder, "_marked_for_rewrite_cache", None)
        if isinstance(marked, set) and isinstance(decided, dict):
            ours = {name for name in marked if name.partition(".")[0] == __name__}
            if ours:
                marked.difference_update(ours)
                decided.clear()


_imported_as_compiled()


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
