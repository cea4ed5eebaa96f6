"""httpx and httpx2 clients: calls made through a transport the cache cannot see.

A client may be given any transport. The network ones (``HTTPTransport`` and subclasses) are
patched by the httpx adapter, in-process ones (mock, ASGI, WSGI) never reach the network, and
a transport that wraps one of ours, or sends with requests or aiohttp, is seen further down,
which shows in the cache status header of its response. A call through any other transport
goes around the cache and could be neither recorded nor replayed: while it is being sent, the
socket guard refuses every connection it opens, so nothing is sent, and a response that comes
back without the cache status header (a transport that answers in-process) still fails the
test, in every mode.

The same wrapper tells the httpx adapter when the caller asked ``send`` for a stream
(``_httpx.STREAM_ASKED``): a replayed body then reaches it unread, as a body from the network.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._capture import CACHE_STATUS_HEADER
from .._current import current, unseen
from ._httpx import STREAM_ASKED
from ._swap import is_swapped, swap

__all__ = ["patch"]

_MARK = "__llm_cache_guard__"  # not ORIGINAL: vcrpy's adapter must not follow these
_KNOWN = ("HTTPTransport", "AsyncHTTPTransport", "MockTransport", "ASGITransport", "WSGITransport")
# Mocking libraries whose own transports answer in-process or hand on to a real one.
_MOCKING_PACKAGES = frozenset({"respx", "pytest_httpx"})


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Watch ``lib``'s clients; return the function that undoes it (``None`` if done)."""
    sync_cls: Any = lib.Client
    async_cls: Any = lib.AsyncClient
    if is_swapped(sync_cls.send, _MARK):
        return None  # the same classes under another name (httpx2.alias_httpx)
    known = tuple(getattr(lib, name) for name in _KNOWN if hasattr(lib, name))
    original_sync = sync_cls.send
    original_async = async_cls.send

    def hidden_transport(client: Any, request: Any) -> str | None:
        """The transport's name if it is one the cache cannot see into."""
        transport_for_url = getattr(client, "_transport_for_url", None)
        transport = transport_for_url(request.url) if transport_for_url else None
        cls = type(transport)
        if transport is None or isinstance(transport, known):
            return None
        if cls.__module__.partition(".")[0] in _MOCKING_PACKAGES:
            return None
        return f"{cls.__module__}.{cls.__qualname__}"

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        test = current()
        if test is None:
            return original_sync(self, request, **kwargs)
        asked = STREAM_ASKED.set(True) if kwargs.get("stream") else None
        try:
            via = hidden_transport(self, request)
            if via is None:
                return original_sync(self, request, **kwargs)
            with unseen(via, f"{request.method} {request.url}"):
                response = original_sync(self, request, **kwargs)
        finally:
            if asked is not None:
                STREAM_ASKED.reset(asked)
        if CACHE_STATUS_HEADER not in response.headers:
            response.close()
            test.bypassed(request.method, str(request.url), via)
        return response

    async def async_send(self: Any, request: Any, **kwargs: Any) -> Any:
        test = current()
        if test is None:
            return await original_async(self, request, **kwargs)
        asked = STREAM_ASKED.set(True) if kwargs.get("stream") else None
        try:
            via = hidden_transport(self, request)
            if via is None:
                return await original_async(self, request, **kwargs)
            with unseen(via, f"{request.method} {request.url}"):
                response = await original_async(self, request, **kwargs)
        finally:
            if asked is not None:
                STREAM_ASKED.reset(asked)
        if CACHE_STATUS_HEADER not in response.headers:
            await response.aclose()
            test.bypassed(request.method, str(request.url), via)
        return response

    return swap([(sync_cls, "send", send), (async_cls, "send", async_send)], _MARK)
