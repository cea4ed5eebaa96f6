"""requests: ``HTTPAdapter.send``, which every session, mount and urllib3 ``Retry`` goes through.

urllib3 retries inside ``send``, so only the final answer reaches the cache. The caller's
``Response.raw`` becomes a :class:`_Body` that hands out the body as urllib3 does for a chunked
response (one piece per HTTP chunk, split to the caller's size), already decoded: that is what
``iter_content``, ``iter_lines``, ``.content`` and ``.json()`` read from.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn

from .._capture import CACHE_STATUS_HEADER, replay_headers
from .._current import current, handling, is_handling
from .._engine import Recording
from .._exchange import Headers, Request, Response
from ._http11 import stop_waiting
from ._swap import is_swapped, swap

__all__ = ["patch"]

_STREAM_AMT = 2**16


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch ``requests``; return the function that undoes it (``None`` if already done)."""
    cls: Any = lib.adapters.HTTPAdapter
    if is_swapped(cls.send):
        return None
    original = cls.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return original(self, request, *args, **kwargs)
        decision = test.decide(_request(request))
        if isinstance(decision, Response):
            return self.build_response(request, _replayed(decision))
        try:
            with handling():
                response = original(self, request, *args, **kwargs)
        except BaseException:
            decision.finish_failed()
            raise
        response.raw = _recorded(response.raw, decision)
        response.headers[CACHE_STATUS_HEADER] = "MISS"
        return response

    return swap([(cls, "send", send)])


def _request(prepared: Any) -> Request:
    body = prepared.body
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)
    else:
        # A file or a generator can be read only once: send what was read for the key.
        data = body.read() if hasattr(body, "read") else b"".join(_bytes(c) for c in body)
        data = _bytes(data)
        prepared.body = data
    headers = tuple((str(k).lower(), _text(v)) for k, v in prepared.headers.items())
    return Request(method=str(prepared.method), url=str(prepared.url), headers=headers, body=data)


def _bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _header_dict(pairs: Any) -> Any:
    from urllib3._collections import HTTPHeaderDict

    headers = HTTPHeaderDict()
    for name, value in pairs:
        headers.add(name, value)
    return headers


def _replayed(stored: Response) -> _Body:
    headers = replay_headers(stored.headers, "HIT")
    if len(stored.chunks) == 1 and stored.past_end is None:
        headers.append(("content-length", str(len(stored.chunks[0]))))
    return _Body(
        _stored(stored.chunks, stored.past_end), status=stored.status, headers=_header_dict(headers)
    )


def _stored(chunks: tuple[bytes, ...], past_end: Callable[[], NoReturn] | None) -> Iterator[bytes]:
    """The stored chunks; reading past those of a recording cut short fails the test."""
    yield from chunks
    if past_end is not None:
        past_end()


def _recorded(raw: Any, recording: Recording) -> _Body:
    headers: Headers = tuple((k.lower(), v) for k, v in raw.headers.items())
    live = _Live(raw, recording, _without_decoded_encoding(raw, headers))
    return _Body(live, status=raw.status, headers=raw.headers, inner=raw)


class _Live:
    """The live body, decoded by urllib3 and kept chunk by chunk as it reaches the caller.

    Closed before the end, it closes the live response at once and keeps the chunks read so
    far as a recording cut short.
    """

    def __init__(self, raw: Any, recording: Recording, headers: Headers) -> None:
        self._raw = raw
        self._recording = recording
        self._headers = headers
        # A chunked body comes one HTTP chunk at a time (an SSE event each, from the providers).
        amt = None if getattr(raw, "chunked", False) else _STREAM_AMT
        self._pieces: Iterator[bytes] = raw.stream(amt, decode_content=True)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._pieces)
        except StopIteration:
            self._recording.finish(self._raw.status, self._headers)
            raise
        except BaseException:
            self._recording.finish_failed()
            raise
        self._recording.add(chunk)
        return chunk

    def close(self) -> None:
        """Close the live response; a body the caller left before its end is cut short."""
        try:
            if not self._recording.done:
                connection = getattr(self._raw, "connection", None)
                ended = stop_waiting(getattr(connection, "sock", None)) and _at_end(self._pieces)
                self._recording.finish(self._raw.status, self._headers, cut_short=not ended)
        finally:
            self._raw.close()


def _at_end(pieces: Iterator[bytes]) -> bool:
    """Whether ``pieces`` ends without another byte (call only once it cannot wait)."""
    try:
        return not any(pieces)
    except Exception:
        return False  # the connection ended before the body did


def _without_decoded_encoding(raw: Any, headers: Headers) -> Headers:
    """urllib3 decoded what it knows; the stored body is decoded, so its header goes."""
    encoding = next((v for k, v in headers if k == "content-encoding"), "")
    known = getattr(raw, "CONTENT_DECODERS", ())
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    if not all(c in known or c == "identity" for c in codings):
        return headers
    return tuple((k, v) for k, v in headers if k != "content-encoding")


class _Body(io.IOBase):
    """``Response.raw`` for requests: the body as a sequence of chunks, read as urllib3 would.

    Replayed, the chunks are the stored ones; recorded, they come from the live urllib3
    response (``inner``), which also answers for the connection and cookies.
    """

    def __init__(
        self, chunks: Iterator[bytes], *, status: int, headers: Any, inner: Any = None
    ) -> None:
        self._chunks = chunks
        self._pending = b""
        self._inner = inner
        self.status = status
        self.headers = headers
        self.reason = getattr(inner, "reason", None) or _reason(status)
        self.version = getattr(inner, "version", 11)
        self.decode_content = True
        self.chunked = True
        # requests reads cookies from here (``extract_cookies_to_jar``).
        self._original_response = getattr(inner, "_original_response", None)

    def _next(self, amt: int | None) -> bytes:
        """The next piece: the rest of the current chunk, at most ``amt`` bytes of it."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = chunk
        size = len(self._pending) if amt is None or amt <= 0 else amt
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece

    def stream(
        self, amt: int | None = _STREAM_AMT, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        """Yield the body chunk by chunk, none longer than ``amt``."""
        while piece := self._next(amt):
            yield piece

    def read(self, amt: int | None = None, decode_content: bool | None = None, **_: Any) -> bytes:
        """Up to ``amt`` bytes (all that is left without it), like a file."""
        if amt is None or amt < 0:
            return b"".join(self.stream(None))
        out = bytearray()
        while len(out) < amt and (piece := self._next(amt - len(out))):
            out += piece
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the body; 0 at the end."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        """A body can be read."""
        return True

    @property
    def data(self) -> bytes:
        """The rest of the body."""
        return self.read()

    def getheaders(self) -> Any:
        """The response headers."""
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """One response header."""
        value = self.headers.get(name, default)
        return None if value is None else str(value)

    def info(self) -> Any:
        """The response headers (``http.client`` style)."""
        return self.headers

    def geturl(self) -> str | None:
        """The URL of the live response, when there was one."""
        return getattr(self._inner, "url", None)

    def release_conn(self) -> None:
        """Give the live connection back to its pool."""
        if self._inner is not None:
            self._inner.release_conn()

    def close(self) -> None:
        """Close the body at once, read to its end or not."""
        if self.closed:
            return
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            super().close()

    def isclosed(self) -> bool:
        """Whether the body was closed."""
        return self.closed


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
