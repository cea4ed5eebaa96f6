"""vcrpy (pytest-recording): its way to the network goes through the cache.

vcrpy keeps a copy of each transport method it finds when ``vcr.patch`` is first imported,
and calls that copy for every request it does not answer itself (``ignore_hosts``, a new
recording). A copy taken before the cache was installed would send those requests around
the cache, so its copies of the methods the cache patched are pointed at the patched ones.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._swap import ORIGINAL

__all__ = ["patch"]

# The methods the other adapters patch, by module and class.
_PATCHED = (
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
    ("httpx2", "HTTPTransport", "handle_request"),
    ("httpx2", "AsyncHTTPTransport", "handle_async_request"),
    ("requests.adapters", "HTTPAdapter", "send"),
    ("aiohttp.connector", "BaseConnector", "connect"),
)


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Point vcrpy's copies at the patched methods; return the function that undoes it."""
    copies: Any = importlib.import_module("vcr.patch")
    patched: dict[Any, Any] = {}
    for module_name, cls_name, method in _PATCHED:
        cls = getattr(sys.modules.get(module_name), cls_name, None)
        function = getattr(cls, method, None)
        original = getattr(function, ORIGINAL, None)
        if original is not None:
            patched[original] = function
    replaced: dict[str, Any] = {}
    for name, value in list(vars(copies).items()):
        if callable(value) and value in patched:
            replaced[name] = value
            setattr(copies, name, patched[value])
    if not replaced:
        return None

    def undo() -> None:
        for name, value in replaced.items():
            setattr(copies, name, value)

    return undo
