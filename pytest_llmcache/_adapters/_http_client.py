"""http.client: ``HTTPConnection.request`` and ``getresponse``, which ``urllib.request`` uses.

``request`` turns the call into the cache's :class:`Request` and decides: a replay sends
nothing (the connection is never opened) and ``getresponse`` answers from the cassette; a
recording sends the request and ``getresponse`` returns the live response with its body
watched on its way to the caller (:mod:`._wire`). urllib3 sends its requests with its own
``request`` and reads them with this ``getresponse``: its adapter decides, and this one lets
the call through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from .._capture import CACHE_STATUS_HEADER
from .._current import current, handling, is_handling
from .._engine import Recording
from .._exchange import Request, Response
from ._swap import is_swapped, swap
from ._wire import body_bytes, header_pairs, origin, replayed, tap

__all__ = ["patch"]

_DECISION = "_llm_cache_decision"
"""Where a connection keeps the decision on its request until ``getresponse``."""


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch ``http.client``; return the function that undoes it (``None`` if already done)."""
    cls: Any = lib.HTTPConnection
    if is_swapped(cls.request):
        return None
    original_request = cls.request
    original_getresponse = cls.getresponse
    https_cls: Any = getattr(lib, "HTTPSConnection", None)  # absent without ssl

    def request(
        self: Any,
        method: str,
        url: str,
        body: Any = None,
        headers: Mapping[Any, Any] | None = None,
        *,
        encode_chunked: bool = False,
    ) -> None:
        headers = {} if headers is None else headers
        test = current()
        if test is None or is_handling():
            original_request(self, method, url, body, headers, encode_chunked=encode_chunked)
            return
        try:
            # http.client sends a text body as Latin-1.
            data, body = body_bytes(body, "iso-8859-1")
        except UnicodeEncodeError:
            # http.client refuses it with its own message, before anything is sent.
            original_request(self, method, url, body, headers, encode_chunked=encode_chunked)
            return
        https = https_cls is not None and isinstance(self, https_cls)
        call = Request(
            method=method.upper(),
            url=_url(self, url, "https" if https else "http"),
            headers=header_pairs(headers),
            body=data,
        )
        decision = test.decide(call)
        setattr(self, _DECISION, (method, decision))
        if isinstance(decision, Response):
            return  # answered from the cassette: nothing is sent
        try:
            with handling():
                original_request(self, method, url, body, headers, encode_chunked=encode_chunked)
        except BaseException:
            setattr(self, _DECISION, None)
            decision.finish_failed()
            raise

    def getresponse(self: Any) -> Any:
        pending: tuple[str, Response | Recording] | None = getattr(self, _DECISION, None)
        if pending is None:
            return original_getresponse(self)
        setattr(self, _DECISION, None)
        method, decision = pending
        if isinstance(decision, Response):
            return replayed(
                decision,
                method,
                response_class=self.response_class,
                debuglevel=self.debuglevel,
            )
        try:
            with handling():
                response = original_getresponse(self)
        except BaseException:
            decision.finish_failed()
            raise
        tap(response, decision)
        response.msg[CACHE_STATUS_HEADER] = "MISS"
        return response

    return swap([(cls, "request", request), (cls, "getresponse", getresponse)])


def _url(connection: Any, target: str, scheme: str) -> str:
    """The full URL of a request target, as the connection sends it."""
    split = urlsplit(target)
    if split.scheme and split.netloc:
        return target  # absolute form: a request to an HTTP proxy
    tunnel = getattr(connection, "_tunnel_host", None)
    if tunnel:  # through a proxy's CONNECT tunnel: the URL is the tunnel's far end
        base = origin(scheme, tunnel, getattr(connection, "_tunnel_port", None))
    else:
        base = origin(scheme, connection.host, connection.port)
    target = target or "/"
    return base + (target if target.startswith("/") else "/" + target)
