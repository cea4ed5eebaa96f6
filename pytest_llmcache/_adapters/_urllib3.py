"""urllib3: ``HTTPConnectionPool.urlopen``, which ``PoolManager``, proxies and botocore use.

urllib3 retries and follows redirects inside ``urlopen``, so only the final answer reaches
the cache. A replay is built as urllib3's connection builds a response, over an
``http.client`` response that reads the stored bytes from memory (:mod:`._wire`), so
``stream()``, ``read_chunked`` and decoding behave as live. A recording asks for the live
response unread, watches its body on the way to the caller, and then preloads it if the
caller asked for that.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from .._capture import CACHE_STATUS_HEADER
from .._current import current, handling, is_handling
from .._exchange import Request, Response
from ._swap import is_swapped, swap
from ._wire import body_bytes, header_pairs, origin, replayed, tap

__all__ = ["patch"]


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch ``urllib3``; return the function that undoes it (``None`` if already done)."""
    pool_cls: Any = importlib.import_module("urllib3.connectionpool").HTTPConnectionPool
    if is_swapped(pool_cls.urlopen):
        return None
    original = pool_cls.urlopen
    build = _ResponseBuilder()
    # urllib3 1.x takes preload_content and decode_content among its extra keywords, 2.x
    # by name: every argument is read and passed on by name, whichever it is.
    signature = inspect.signature(original)
    extra = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return original(self, method, url, *args, **kwargs)
        call: dict[str, Any] = dict(signature.bind(self, method, url, *args, **kwargs).arguments)
        if extra is not None:
            call.update(call.pop(extra, {}))
        data, body = body_bytes(call.get("body"), "utf-8")
        if body is not call.get("body"):
            call["body"] = body
            call.pop("body_pos", None)  # the fresh body starts at its beginning
        headers = call.get("headers")
        decision = test.decide(
            Request(
                method=method.upper(),
                url=_url(self, url),
                headers=header_pairs(self.headers if headers is None else headers),
                body=data,
            )
        )
        if isinstance(decision, Response):
            return build(self, decision, call)
        preload = call.get("preload_content", True)
        if preload:
            # Read below, through the tap; the response gives its connection back once
            # read, as a preloaded one does.
            call["preload_content"] = False
            call["release_conn"] = False
        try:
            with handling():
                response = original(**call)
        except BaseException:
            decision.finish_failed()
            raise
        raw = getattr(response, "_original_response", None)
        if raw is None:
            # Not over http.client (urllib3's HTTP/2, Pyodide): no bytes to follow, so
            # nothing to store; replaying the call will say it is missing.
            decision.finish_failed()
            return response
        watched = tap(raw, decision)
        response.headers[CACHE_STATUS_HEADER] = "MISS"
        if watched is not None and response.connection is not None:
            # Giving the connection back before the end of the body is leaving the stream.
            give_back = response.release_conn

            def release_conn() -> None:
                watched.leave()
                give_back()

            response.release_conn = release_conn
        if preload:
            response.read(decode_content=call.get("decode_content", True), cache_content=True)
        return response

    return swap([(pool_cls, "urlopen", urlopen)])


def _url(pool: Any, url: str) -> str:
    """The full URL of a ``urlopen`` target (a path, or absolute through a proxy)."""
    split = urlsplit(url)
    if split.scheme and split.netloc:
        return url
    base = origin(pool.scheme, pool.host, pool.port)
    return base + (url if url.startswith("/") else "/" + url)


class _ResponseBuilder:
    """Builds a replayed urllib3 response the way urllib3's own connection does."""

    def __init__(self) -> None:
        response_module: Any = importlib.import_module("urllib3.response")
        self._response_cls = response_module.HTTPResponse
        self._header_dict = importlib.import_module("urllib3._collections").HTTPHeaderDict
        self._retry_cls = importlib.import_module("urllib3.util.retry").Retry
        parameters = inspect.signature(self._response_cls).parameters
        self._has_version_string = "version_string" in parameters  # urllib3 2.x

    def __call__(self, pool: Any, stored: Response, call: dict[str, Any]) -> Any:
        method = str(call["method"])
        raw = replayed(stored, method)
        headers = self._header_dict()
        for name, value in raw.msg.items():
            headers.add(name, value)
        retries = call.get("retries")
        if not isinstance(retries, self._retry_cls):
            retries = self._retry_cls.from_int(
                retries, redirect=call.get("redirect", True), default=pool.retries
            )
        options: dict[str, Any] = {
            "body": raw,
            "headers": headers,
            "status": raw.status,
            "version": raw.version,
            "reason": raw.reason,
            "preload_content": call.get("preload_content", True),
            "decode_content": call.get("decode_content", True),
            "original_response": raw,
            "pool": pool,
            "connection": None,
            "retries": retries,
            "enforce_content_length": call.get("enforce_content_length", True),
            "request_method": method,
            "request_url": call["url"],
        }
        if self._has_version_string:
            options["version_string"] = "HTTP/1.1"
        return self._response_cls(**options)
