"""pytest-llmcache: record LLM API calls once, replay them in every test run."""

from __future__ import annotations

import importlib
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


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
