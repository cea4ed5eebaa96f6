"""httpx and httpx2: their network transports, sync and async.

Both libraries share one API, so one adapter serves them, given the module. Only
``HTTPTransport`` and ``AsyncHTTPTransport`` are patched: in-process transports (mock, ASGI,
WSGI) never reach the network and are left alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

from .._capture import CACHE_STATUS_HEADER, replay_headers
from .._current import current, handling, is_handling
from .._engine import Recording
from .._exchange import Request, Response
from ._swap import is_swapped, swap

__all__ = ["patch"]


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch ``lib``'s transports; return the function that undoes it (``None`` if done)."""
    sync_cls: Any = lib.HTTPTransport
    async_cls: Any = lib.AsyncHTTPTransport
    if is_swapped(sync_cls.handle_request):
        return None  # the same classes under another name (httpx2.alias_httpx)
    original_sync = sync_cls.handle_request
    original_async = async_cls.handle_async_request
    streams = _stream_classes(lib)

    def handle_request(self: Any, request: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return original_sync(self, request)
        request.read()
        decision = test.decide(_request(request))
        if isinstance(decision, Response):
            return _replayed(lib, streams.replay, decision, request)
        try:
            with handling():
                response = original_sync(self, request)
        except BaseException:
            decision.finish_failed()
            raise
        return _recorded(lib, streams.record, response, decision)

    async def handle_async_request(self: Any, request: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return await original_async(self, request)
        await request.aread()
        decision = test.decide(_request(request))
        if isinstance(decision, Response):
            return _replayed(lib, streams.replay, decision, request)
        try:
            with handling():
                response = await original_async(self, request)
        except BaseException:
            decision.finish_failed()
            raise
        return _recorded(lib, streams.arecord, response, decision)

    return swap(
        [
            (sync_cls, "handle_request", handle_request),
            (async_cls, "handle_async_request", handle_async_request),
        ]
    )


def _request(request: Any) -> Request:
    return Request(
        method=request.method,
        url=str(request.url),
        headers=tuple(request.headers.multi_items()),
        body=request.content,
    )


def _replayed(lib: Any, stream_cls: Any, stored: Response, request: Any) -> Any:
    headers = replay_headers(stored.headers, "HIT")
    if len(stored.chunks) == 1:
        headers.append(("content-length", str(len(stored.chunks[0]))))
    return lib.Response(
        stored.status,
        headers=headers,
        stream=stream_cls(stored.chunks),
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )


def _recorded(lib: Any, stream_cls: Any, response: Any, recording: Recording) -> Any:
    headers = tuple(response.headers.multi_items())
    return lib.Response(
        response.status_code,
        headers=[*response.headers.raw, (CACHE_STATUS_HEADER.encode(), b"MISS")],
        stream=stream_cls(response.stream, recording, response.status_code, headers),
        extensions=response.extensions,
    )


class _Streams:
    def __init__(self, replay: Any, record: Any, arecord: Any) -> None:
        self.replay = replay
        self.record = record
        self.arecord = arecord


def _stream_classes(lib: Any) -> _Streams:
    """Byte streams built on ``lib``'s own base classes, as its client checks for them."""

    class ReplayStream(lib.SyncByteStream, lib.AsyncByteStream):  # type: ignore[misc]
        """The stored chunks, in order, to a sync or an async reader."""

        def __init__(self, chunks: tuple[bytes, ...]) -> None:
            self._chunks = chunks

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._chunks)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self._chunks:
                yield chunk

    class RecordingStream(lib.SyncByteStream):  # type: ignore[misc]
        """Passes the live chunks through as they arrive and keeps a copy of each."""

        def __init__(self, inner: Any, recording: Recording, status: int, headers: Any) -> None:
            self._inner = inner
            self._recording = recording
            self._status = status
            self._headers = headers
            self._iterator = self._produce()

        def _produce(self) -> Iterator[bytes]:
            # Held here, not only by the loop: leaving the loop must not drop (and so close)
            # the live stream while the rest of it is still to be read.
            chunks = iter(self._inner)
            try:
                for chunk in chunks:
                    self._recording.add(chunk)
                    yield chunk
            except GeneratorExit:
                # A reader that returns at its end-of-stream event (mistral's [DONE]) drops
                # the byte iterators, which closes this one before the response is closed:
                # the rest of the body still belongs in the recording.
                self._drain(chunks)
                raise
            except Exception:
                self._recording.finish_failed()
                raise
            self._recording.finish(self._status, self._headers)

        def _drain(self, chunks: Iterator[bytes]) -> None:
            if self._recording.done:
                return
            try:
                for chunk in chunks:
                    self._recording.add(chunk)
            except Exception:
                self._recording.finish_failed()
            else:
                self._recording.finish(self._status, self._headers)

        def __iter__(self) -> Iterator[bytes]:
            return self._iterator

        def close(self) -> None:
            # A caller that stops reading early still gets a complete recording.
            try:
                if not self._recording.done:
                    for _ in self._iterator:
                        pass
            finally:
                self._inner.close()

    class AsyncRecordingStream(lib.AsyncByteStream):  # type: ignore[misc]
        """The async twin of ``RecordingStream``."""

        def __init__(self, inner: Any, recording: Recording, status: int, headers: Any) -> None:
            self._inner = inner
            self._recording = recording
            self._status = status
            self._headers = headers
            self._iterator = self._produce()

        async def _produce(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    self._recording.add(chunk)
                    yield chunk
            except Exception:
                self._recording.finish_failed()
                raise
            self._recording.finish(self._status, self._headers)

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self._iterator

        async def aclose(self) -> None:
            try:
                if not self._recording.done:
                    async for _ in self._iterator:
                        pass
            finally:
                await self._inner.aclose()

    return _Streams(ReplayStream, RecordingStream, AsyncRecordingStream)
