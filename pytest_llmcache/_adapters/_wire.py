"""``http.client`` responses: served from a cassette, or watched live, for http.client and urllib3.

A replayed answer is a real :class:`http.client.HTTPResponse` that parses the stored
response's HTTP/1.1 bytes from memory, so its own chunked decoding (``read1``, ``readline``,
``peek``) and what urllib3 builds on it (``stream()``) hand out the stored chunks one by one,
as they did live. A recorded answer is the live response with its socket file tapped: the
bytes pass through untouched as the library reads them, and a :class:`ResponseReader`
follows them to give the body to the recording one piece per HTTP chunk.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable
from typing import Any, NoReturn

from .._engine import Recording
from .._exchange import Headers, Response
from ._http11 import ResponseReader, render

__all__ = ["body_bytes", "header_pairs", "origin", "replayed", "tap"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = frozenset({204, 304})


def origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]``, the port left out when it is the scheme's default."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def body_bytes(body: Any, text_encoding: str) -> tuple[bytes, Any]:
    """The bytes a request body sends, and the body to send them with.

    A file or an iterator can be read only once: read here for the key, it is handed on as a
    fresh one of the same kind (a file stays a file, an iterable an iterable), so the library
    frames the request as it would have.
    """
    if body is None:
        return b"", None
    if isinstance(body, str):
        return body.encode(text_encoding), body
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), body
    if hasattr(body, "read"):
        data = _bytes(body.read(), text_encoding)
        return data, io.BytesIO(data)
    try:
        return bytes(memoryview(body)), body  # array.array and other buffers
    except TypeError:
        pass
    data = b"".join(_bytes(piece, text_encoding) for piece in body)
    return data, [data]


def header_pairs(headers: Any) -> Headers:
    """A request's header mapping as the cache's pairs (names lower-case, bytes as Latin-1)."""
    return tuple((_text(k).lower(), _text(v)) for k, v in headers.items())


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _bytes(value: Any, text_encoding: str) -> bytes:
    return value.encode(text_encoding) if isinstance(value, str) else bytes(value)


# -- replay -----------------------------------------------------------------------------


def replayed(
    stored: Response, method: str, *, response_class: Any = None, debuglevel: int = 0
) -> Any:
    """An ``http.client.HTTPResponse`` (or ``response_class``) reading ``stored`` from memory."""
    cls: Any = http.client.HTTPResponse if response_class is None else response_class
    pieces = _pieces(stored, head=method.upper() == "HEAD")
    response = cls(_MemorySocket(pieces, stored.past_end), debuglevel, method=method)
    response.begin()
    return response


def _pieces(stored: Response, *, head: bool) -> list[bytes]:
    if stored.past_end is None or head or stored.status < 200 or stored.status in _NO_BODY_STATUSES:
        return render(stored, head=head)
    # A recording cut short has no end: its chunks, then nothing, not even the last chunk,
    # so a reader that asks for more reaches ``past_end`` instead of a clean end of body.
    head_bytes = render(stored, head=True)[0]
    head_bytes = head_bytes[:-2] + b"transfer-encoding: chunked\r\n\r\n"
    return [head_bytes, *(b"%x\r\n%s\r\n" % (len(c), c) for c in stored.chunks if c)]


class _MemorySocket:
    """The socket a replayed response reads from: what it needs of one, ``makefile``."""

    def __init__(self, pieces: list[bytes], past_end: Callable[[], NoReturn] | None) -> None:
        self._pieces = pieces
        self._past_end = past_end

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        """The response bytes as a buffered file, like a socket's."""
        return io.BufferedReader(_Pieces(self._pieces, self._past_end))


class _Pieces(io.RawIOBase):
    """Raw bytes handed out one piece at a time, as a socket receives what a server sends."""

    def __init__(self, pieces: list[bytes], past_end: Callable[[], NoReturn] | None) -> None:
        super().__init__()
        self._pieces = list(reversed(pieces))
        self._current = b""
        self._past_end = past_end

    def readable(self) -> bool:
        """A response can be read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current piece; 0 at the end of the response."""
        if not self._current:
            if not self._pieces:
                if self._past_end is not None:
                    self._past_end()
                return 0
            self._current = self._pieces.pop()
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size


# -- recording --------------------------------------------------------------------------


def tap(response: Any, recording: Recording) -> _Tap | None:
    """Follow the body of a live ``http.client.HTTPResponse`` into ``recording``.

    Returns the tap (``None`` when the response has no body left to read: it is stored now).
    """
    status = int(response.status)
    headers: Headers = tuple((str(k).lower(), str(v)) for k, v in response.msg.items())
    reader = ResponseReader(recording, head=str(response._method).upper() == "HEAD")
    version = "HTTP/1.0" if response.version == 10 else "HTTP/1.1"
    lines = [f"{version} {status} {response.reason}", *(f"{k}: {v}" for k, v in headers)]
    # The head was parsed already; the reader learns the framing of the body from a copy.
    reader.feed(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
    if recording.done:
        return None
    if response.fp is None:
        recording.finish(status, headers)
        return None
    watched = _Tap(response.fp, reader, recording, status, headers)
    response.fp = watched
    return watched


class _Tap:
    """A live response's socket file: bytes pass through as they are read, and are followed.

    ``peek`` consumes nothing and is not followed. Closed before the body's end, the
    recording keeps what was read, marked as cut short; the rest is never read.
    """

    def __init__(
        self,
        inner: Any,
        reader: ResponseReader,
        recording: Recording,
        status: int,
        headers: Headers,
    ) -> None:
        self._inner = inner
        self._reader = reader
        self._recording = recording
        self._status = status
        self._headers = headers

    def _follow(self, data: bytes, *, eof: bool) -> None:
        if self._recording.done:
            return
        if data:
            self._reader.feed(data)
        if eof:
            self._reader.eof(failed=False)

    def _failed(self) -> None:
        if not self._recording.done:
            self._recording.finish_failed()

    def read(self, size: int | None = -1) -> bytes:
        """Read like the socket file; reading everything (no size) reaches its end."""
        try:
            data: bytes = self._inner.read(size)
        except BaseException:
            self._failed()
            raise
        self._follow(data, eof=size is None or size < 0 or (size > 0 and not data))
        return data

    def read1(self, size: int = -1) -> bytes:
        """Read what is at hand, like the socket file."""
        try:
            data: bytes = self._inner.read1(size)
        except BaseException:
            self._failed()
            raise
        self._follow(data, eof=size != 0 and not data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """Read a line, like the socket file."""
        try:
            data: bytes = self._inner.readline(size)
        except BaseException:
            self._failed()
            raise
        self._follow(data, eof=size != 0 and not data)
        return data

    def readinto(self, buffer: Any) -> int | None:
        """Fill ``buffer``, like the socket file."""
        try:
            count: int | None = self._inner.readinto(buffer)
        except BaseException:
            self._failed()
            raise
        if count is not None:
            self._follow(bytes(memoryview(buffer)[:count]), eof=count == 0 and len(buffer) > 0)
        return count

    def peek(self, size: int = 0) -> bytes:
        """Look ahead without consuming: nothing to follow."""
        data: bytes = self._inner.peek(size)
        return data

    def leave(self) -> None:
        """The caller is done with the body: what it read so far is the recording."""
        if not self._recording.done:
            self._recording.finish(self._status, self._headers, cut_short=True)

    def close(self) -> None:
        """Close the socket file at once, without reading the rest of the body."""
        self.leave()
        self._inner.close()

    @property
    def closed(self) -> bool:
        """Whether the socket file was closed."""
        return bool(self._inner.closed)

    def __getattr__(self, name: str) -> Any:
        # Everything else (fileno, flush, raw, ...) is the socket file's own.
        return getattr(self._inner, name)
