"""httpx and httpx2: their network transports, sync and async.

Both libraries share one API, so one adapter serves them, given the module. Only
``HTTPTransport`` and ``AsyncHTTPTransport`` are patched: in-process transports (mock, ASGI,
WSGI) never reach the network and are left alone.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any, NoReturn

from .._capture import CACHE_STATUS_HEADER, replay_headers
from .._current import current, handling, is_handling
from .._engine import Recording
from .._exchange import Headers, Request, Response
from ._http11 import stop_waiting
from ._lazy import defer
from ._swap import is_swapped, swap

__all__ = ["STREAM_ASKED", "patch"]

STREAM_ASKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llm_cache_stream_asked", default=False
)
"""Whether the client's ``send`` running now was asked for a stream (``stream=True``, as
``client.stream()`` asks): its caller reads the body itself, raw bytes included, so a replayed
body reaches it unread. Set by the clients' ``send`` (:mod:`._guard`)."""

_NO_TIME = datetime.timedelta(0)
"""How long a replayed response took to arrive."""


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch ``lib``'s transports; return the function that undoes it (``None`` if done)."""
    sync_cls: Any = lib.HTTPTransport
    async_cls: Any = lib.AsyncHTTPTransport
    if is_swapped(sync_cls.handle_request):
        return None  # the same classes under another name (httpx2.alias_httpx)
    original_sync = sync_cls.handle_request
    original_async = async_cls.handle_async_request
    # httpx checks a response's stream against its own base classes, and httpx and httpx2
    # each have theirs: the streams below get them here, their logic stays one.
    replay_cls = type("ReplayStream", (_ReplayStream, lib.SyncByteStream, lib.AsyncByteStream), {})
    record_cls = type("RecordingStream", (_RecordingStream, lib.SyncByteStream), {})
    arecord_cls = type("AsyncRecordingStream", (_AsyncRecordingStream, lib.AsyncByteStream), {})

    def handle_request(self: Any, request: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return original_sync(self, request)
        request.read()
        decision = test.decide(_request(request))
        if isinstance(decision, Response):
            return _replayed(lib, replay_cls, decision, request)
        try:
            with handling():
                response = original_sync(self, request)
        except BaseException:
            decision.finish_failed()
            raise
        return _recorded(lib, record_cls, response, decision)

    async def handle_async_request(self: Any, request: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return await original_async(self, request)
        await request.aread()
        decision = test.decide(_request(request))
        if isinstance(decision, Response):
            return _replayed(lib, replay_cls, decision, request)
        try:
            with handling():
                response = await original_async(self, request)
        except BaseException:
            decision.finish_failed()
            raise
        return _recorded(lib, arecord_cls, response, decision)

    undo_swap = swap(
        [
            (sync_cls, "handle_request", handle_request),
            (async_cls, "handle_async_request", handle_async_request),
        ]
    )
    # A replayed call never reaches a transport's connection pool: build it when needed.
    undo_sync = defer(sync_cls, ("close", "__exit__"), ("__enter__",))
    undo_async = defer(async_cls, ("aclose", "__aexit__"), ("__aenter__",))

    def undo() -> None:
        undo_async()
        undo_sync()
        undo_swap()

    return undo


def _request(request: Any) -> Request:
    return Request(request.method, str(request.url), _headers(request.headers), request.content)


def _headers(headers: Any) -> Headers:
    """As ``multi_items()`` gives them: names lower-cased, in order, repeats kept."""
    # httpx keeps each header as (name, lower-case name, value): decoded from there, as
    # UTF-8, which gives what httpx's own choice would (ASCII if all are, else UTF-8 if all
    # are), with no pass to make that choice. Only a header that is not UTF-8 (then httpx
    # reads every one as Latin-1), or an encoding set by hand, takes httpx's own way.
    held = getattr(headers, "_list", None)
    if type(held) is list:
        try:
            return tuple([(name.decode(), value.decode()) for _, name, value in held])
        except (TypeError, ValueError, AttributeError):
            pass  # not httpx's triples of bytes, or a header that is not UTF-8
    return tuple(headers.multi_items())


def _replayed(lib: Any, stream_cls: Any, stored: Response, request: Any) -> Any:
    headers = replay_headers(stored.headers, "HIT")
    if len(stored.chunks) == 1 and stored.past_end is None:
        body = stored.chunks[0]
        headers.append(("content-length", str(len(body))))
        streamed = STREAM_ASKED.get()
        if not streamed and any(name == "content-encoding" for name, _ in headers):
            # A body kept encoded: given as content, for the library to decode.
            response = lib.Response(
                stored.status, headers=headers, content=body, request=request, extensions=_HTTP11
            )
        else:
            response = lib.Response(
                stored.status,
                headers=headers,
                stream=lib.ByteStream(body),
                request=request,
                extensions=_HTTP11,
            )
            # A caller who asked for a stream reads it, chunk by chunk or raw, as a body
            # from the network. Otherwise it is a whole body, as an in-memory transport
            # gives it: already read, so the client has it at once (no stream to iterate,
            # no round of the event loop per chunk). Reading it would decode nothing: the
            # response is left as that read leaves it.
            if not streamed:
                response._content = body
                response._num_bytes_downloaded = len(body)
                response.is_stream_consumed = True
                response.is_closed = True
        # The time it took, nothing, is known now.
        response.elapsed = _NO_TIME
        return response
    return lib.Response(
        stored.status,
        headers=headers,
        stream=stream_cls(stored.chunks, stored.past_end),
        request=request,
        extensions=_HTTP11,
    )


_HTTP11 = {"http_version": b"HTTP/1.1"}
"""A replayed response's extensions (each response copies them)."""


def _recorded(lib: Any, stream_cls: Any, response: Any, recording: Recording) -> Any:
    tee = _Tee(recording, response.status_code, tuple(response.headers.multi_items()))
    extensions = response.extensions
    if extensions.get("http_version") in (b"HTTP/1.1", b"HTTP/1.0"):
        # One response per connection: shutting its read side touches no other stream.
        network = extensions.get("network_stream")
        tee.socket = network.get_extra_info("socket") if network is not None else None
    return lib.Response(
        response.status_code,
        headers=[*response.headers.raw, (CACHE_STATUS_HEADER.encode(), b"MISS")],
        stream=stream_cls(response.stream, tee),
        extensions=extensions,
    )


class _ReplayStream:
    """The stored chunks, in order, to a sync or an async reader.

    Reading past the last chunk of a recording cut short fails the test (``past_end``).
    """

    def __init__(self, chunks: tuple[bytes, ...], past_end: Callable[[], NoReturn] | None) -> None:
        self._chunks = chunks
        self._past_end = past_end

    def __iter__(self) -> Iterator[bytes]:
        if self._past_end is None:
            return iter(self._chunks)  # (no generator to resume for each chunk)
        return self._up_to_past_end(self._past_end)

    def _up_to_past_end(self, past_end: Callable[[], NoReturn]) -> Iterator[bytes]:
        yield from self._chunks
        past_end()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._past_end is not None:
            self._past_end()


class _Tee:
    """One live response on its way to the caller, copied into its recording as it passes.

    What the sync and async streams share: the copy, and the verdict when the caller leaves.
    """

    def __init__(self, recording: Recording, status: int, headers: Headers) -> None:
        self.recording = recording
        self.status = status
        self.headers = headers
        self.socket: object = None
        """The connection's socket, when the response has it to itself (HTTP/1.x)."""

    def add(self, chunk: bytes) -> None:
        self.recording.add(chunk)

    def ended(self) -> None:
        self.recording.finish(self.status, self.headers)

    def failed(self) -> None:
        self.recording.finish_failed()

    @property
    def open(self) -> bool:
        """The caller has not yet read to the end, nor has the read failed."""
        return not self.recording.done

    def stop_waiting(self) -> bool:
        """Make the next read return at once; ``False`` when that is not possible."""
        return stop_waiting(self.socket)

    def left(self, *, ended: bool) -> None:
        """The caller closed the stream: keep the chunks it read, cut short unless the body
        had already ended (all of it received, only its end not yet read)."""
        self.recording.finish(self.status, self.headers, cut_short=not ended)


class _RecordingStream:
    """Passes the live chunks through as they arrive and keeps a copy of each.

    Closing before the end closes the live response at once: nothing more is read from a
    server that may take long to finish, or never finish.
    """

    def __init__(self, inner: Any, tee: _Tee) -> None:
        self._inner = inner
        self._tee = tee
        # Held here, not only by the loop below: a reader that drops its iterator before
        # closing the response (mistral's, at its [DONE] event) must leave the live one
        # open, for ``close`` to see whether the body had ended.
        self._live: Iterator[bytes] = iter(inner)
        self._iterator = self._produce()

    def _produce(self) -> Iterator[bytes]:
        try:
            for chunk in self._live:
                self._tee.add(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the reader stopped; ``close`` settles the recording
        except BaseException:
            self._tee.failed()
            raise
        self._tee.ended()

    def __iter__(self) -> Iterator[bytes]:
        return self._iterator

    def close(self) -> None:
        try:
            if self._tee.open:
                self._tee.left(ended=self._tee.stop_waiting() and _at_end(self._live))
        finally:
            self._inner.close()


class _AsyncRecordingStream:
    """The async twin of ``_RecordingStream``."""

    def __init__(self, inner: Any, tee: _Tee) -> None:
        self._inner = inner
        self._tee = tee
        self._live: AsyncIterator[bytes] = aiter(inner)
        self._iterator = self._produce()

    async def _produce(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._live:
                self._tee.add(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException:
            self._tee.failed()
            raise
        self._tee.ended()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterator

    async def aclose(self) -> None:
        try:
            if self._tee.open:
                self._tee.left(ended=self._tee.stop_waiting() and await _async_at_end(self._live))
        finally:
            await self._inner.aclose()


def _at_end(live: Iterator[bytes]) -> bool:
    """Whether ``live`` ends without another byte (call only once it cannot wait)."""
    try:
        return not any(live)
    except Exception:
        return False  # the connection ended before the body did


async def _async_at_end(live: AsyncIterator[bytes]) -> bool:
    try:
        async for chunk in live:
            if chunk:
                return False
    except Exception:
        return False
    return True
