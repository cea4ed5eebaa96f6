"""aiohttp: the connector, where every session's request gets its connection.

Patching ``BaseConnector.connect`` reaches every ``ClientSession``, including the ones SDKs
build for themselves (litellm's ``LiteLLMAiohttpTransport``, openai and anthropic
``DefaultAioHttpClient``, google-genai's async client), with aiohttp's own request building
and response parsing left in place. A replay gets a connection to an in-memory socket that
sends the stored response as HTTP/1.1 bytes, one HTTP chunk per stored chunk, each in its own
turn of the event loop, so a reader sees the chunks as a server would send them. A recording
gets the real connection, with the response bytes watched on their way to aiohttp.

A WebSocket handshake (``ClientSession.ws_connect``) is a session: replayed, its socket's
other end is a :class:`~._ws_session.Peer`, so aiohttp's own handshake and frame parsing run
as they do live; recorded, the live socket's bytes are read both ways as messages
(:class:`~._ws_session.WireTap`).
"""

from __future__ import annotations

import asyncio
import importlib
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn

from .._current import current, handling, is_handling
from .._engine import Recording
from .._exchange import Request, Response
from ._http11 import ResponseReader, render
from ._swap import is_swapped, swap

if TYPE_CHECKING:
    from ._ws_session import Peer, WireTap

__all__ = ["patch"]


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch aiohttp's connector; return the function that undoes it (``None`` if done)."""
    connector_cls: Any = importlib.import_module("aiohttp.connector").BaseConnector
    if is_swapped(connector_cls.connect):
        return None
    original = connector_cls.connect
    connection_cls: Any = importlib.import_module("aiohttp.connector").Connection
    handler_cls: Any = importlib.import_module("aiohttp.client_proto").ResponseHandler
    # aiohttp's own handler, told apart on a replayed connection (see ``_ReplayHandler``).
    replay_handler_cls = type("ReplayHandler", (_ReplayHandler, handler_cls), {})

    async def connect(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        test = current()
        if test is None or is_handling():
            return await original(self, req, *args, **kwargs)
        if req.headers.get("upgrade", "").lower() == "websocket":
            # The WebSocket session code is loaded by the first WebSocket a test opens.
            from ._ws_session import Peer, WireTap, handshake_request

            request = handshake_request(str(req.url), req.headers.items())
            decision = test.decide(request)
            if isinstance(decision, Response):
                peer = Peer(test, request, decision)
                return replayed(req, lambda protocol, loop: _PeerSocket(protocol, peer, loop))
            connection = await live(self, req, args, kwargs, decision)
            _SessionTap(connection.transport, connection.protocol, WireTap(decision))
            return connection
        decision = test.decide(await _request(req))
        head = req.method.upper() == "HEAD"
        if isinstance(decision, Response):
            pieces = render(decision, head=head)
            past_end = decision.past_end
            return replayed(
                req, lambda protocol, loop: _ReplaySocket(protocol, pieces, loop, past_end)
            )
        connection = await live(self, req, args, kwargs, decision)
        _Tap(connection.transport, connection.protocol, decision, head=head)
        return connection

    def replayed(req: Any, socket: Callable[[Any, asyncio.AbstractEventLoop], Any]) -> Any:
        """A connection to an in-memory socket, through aiohttp's own response handler."""
        loop = asyncio.get_running_loop()
        protocol = replay_handler_cls(loop)
        protocol.connection_made(socket(protocol, loop))
        return connection_cls(_NoPool(), req.connection_key, protocol, loop)

    async def live(self: Any, req: Any, args: Any, kwargs: Any, recording: Recording) -> Any:
        """The real connection, for a call being recorded."""
        try:
            with handling():
                return await original(self, req, *args, **kwargs)
        except BaseException:
            recording.finish_failed()
            raise

    return swap([(connector_cls, "connect", connect)])


async def _request(req: Any) -> Request:
    headers = tuple((str(k).lower(), str(v)) for k, v in req.headers.items())
    body = await _body_bytes(req.body)
    return Request(method=req.method.upper(), url=str(req.url), headers=headers, body=body)


async def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    as_bytes = getattr(body, "as_bytes", None)
    if as_bytes is not None:
        # aiohttp >= 3.12: every payload can give its bytes and still be sent afterwards.
        return bytes(await as_bytes())
    collector = _Collector()
    await body.write(collector)
    return bytes(collector.data)


class _Collector:
    """A stream writer that keeps what a payload writes (aiohttp before 3.12)."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.data += chunk

    async def write_eof(self, chunk: bytes = b"") -> None:
        self.data += chunk

    async def drain(self) -> None:
        return None


class _NoPool:
    """The connector of a replayed connection: nothing to pool, so releasing closes it."""

    force_close = False

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        protocol.close()


class _ReplayHandler:
    """aiohttp's response handler on a replayed connection, which sees a reader wait.

    aiohttp's body reader asks its handler whether the connection is still there each time
    it is about to wait for more bytes: past the last chunk of a recording cut short, that
    wait is a read past the end.
    """

    transport: Any

    @property
    def connected(self) -> bool:
        """Whether the connection is open (a read past a recording cut short fails here)."""
        transport = self.transport
        if isinstance(transport, _ReplaySocket):
            transport.waited_on()
        return transport is not None


class _ReplaySocket(asyncio.Transport):
    """An in-memory socket that sends a stored response and swallows the request.

    Each piece goes out in its own turn of the event loop, and none while the protocol has
    paused reading, as with a real socket.
    """

    def __init__(
        self,
        protocol: asyncio.Protocol,
        pieces: list[bytes],
        loop: asyncio.AbstractEventLoop,
        past_end: Callable[[], NoReturn] | None = None,
    ) -> None:
        super().__init__()
        self._protocol = protocol
        self._pieces = deque(pieces)
        self._loop = loop
        self._past_end = past_end
        self._paused = False
        self._closing = False
        self._scheduled = False
        self._schedule()

    def _schedule(self) -> None:
        if self._pieces and not (self._scheduled or self._paused or self._closing):
            self._scheduled = True
            self._loop.call_soon(self._send)

    def _send(self) -> None:
        self._scheduled = False
        if self._pieces and not (self._paused or self._closing):
            self._protocol.data_received(self._pieces.popleft())
            self._schedule()

    def waited_on(self) -> None:
        """A reader waits for more of the body: past a recording cut short, that fails."""
        if self._past_end is not None and not self._pieces and not self._closing:
            self._past_end()

    def write(self, data: Any) -> None:
        """The request: already in the cache's hands."""

    def writelines(self, list_of_data: Any) -> None:
        """The request: already in the cache's hands."""

    def write_eof(self) -> None:
        """The end of the request."""

    def can_write_eof(self) -> bool:
        """Like a TCP socket."""
        return True

    def get_write_buffer_size(self) -> int:
        """Nothing is ever waiting to be written."""
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing to limit."""

    def pause_reading(self) -> None:
        """Hold the response back until the reader catches up."""
        self._paused = True

    def resume_reading(self) -> None:
        """Send the rest of the response."""
        self._paused = False
        self._schedule()

    def is_reading(self) -> bool:
        """Whether the response is flowing."""
        return not self._paused

    def is_closing(self) -> bool:
        """Whether the socket was closed."""
        return self._closing

    def close(self) -> None:
        """Close the socket; the protocol hears of it on the next turn, as with a real one."""
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        """Close at once."""
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """No socket, peer or TLS details: there is no network."""
        return default


class _PeerSocket(_ReplaySocket):
    """An in-memory socket whose other end is a replayed WebSocket server: what aiohttp
    writes goes to the peer, whose answer comes back on the next turn of the event loop."""

    def __init__(self, protocol: asyncio.Protocol, peer: Peer, loop: asyncio.AbstractEventLoop):
        super().__init__(protocol, [], loop)
        self._peer = peer

    def write(self, data: Any) -> None:
        """The client's bytes: answered by the peer (a miss raises here, in the sender)."""
        if self.is_closing():
            return
        out = self._peer.receive(bytes(data))
        if out:
            self._pieces.append(out)
            self._schedule()
        if self._peer.ended:
            # The server's last bytes go first, then the connection ends, as from a socket.
            self._loop.call_soon(self._end)

    def writelines(self, list_of_data: Any) -> None:
        """Several writes in one."""
        self.write(b"".join(list_of_data))

    def _end(self) -> None:
        if self._pieces and not self.is_closing():
            self._loop.call_soon(self._end)
            return
        self.close()


class _SessionTap(asyncio.Protocol):
    """Stands between a live socket and aiohttp for a whole WebSocket session, reading the
    bytes that pass both ways (the socket is never pooled again, so it stays in place)."""

    def __init__(self, transport: Any, protocol: Any, wire: WireTap) -> None:
        self._protocol = protocol
        self._wire = wire
        write, writelines = transport.write, transport.writelines

        def written(data: Any) -> None:
            wire.client(bytes(data))
            write(data)

        def lines_written(list_of_data: Any) -> None:
            chunks = [bytes(chunk) for chunk in list_of_data]
            wire.client(b"".join(chunks))
            writelines(chunks)

        # On the instance: only this connection's writes are read.
        transport.write, transport.writelines = written, lines_written
        transport.set_protocol(self)

    def data_received(self, data: bytes) -> None:
        """The server's bytes: read, then passed on."""
        self._wire.server(data)
        self._protocol.data_received(data)

    def eof_received(self) -> bool | None:
        """The server closed its side."""
        result: bool | None = self._protocol.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended: the session is stored."""
        self._wire.finish()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        """Flow control of the client's writes: aiohttp's business."""
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        """Flow control of the client's writes: aiohttp's business."""
        self._protocol.resume_writing()


class _Tap(asyncio.Protocol):
    """Stands between a live socket and aiohttp for one response, watching the bytes pass.

    Put in place with the transport's ``set_protocol`` and taken out once the response is
    complete, so a pooled connection goes back exactly as it was.
    """

    def __init__(self, transport: Any, protocol: Any, recording: Recording, *, head: bool) -> None:
        self._transport = transport
        self._protocol = protocol
        self._reader = ResponseReader(recording, head=head)
        transport.set_protocol(self)

    def _restore(self) -> None:
        if self._transport.get_protocol() is self:
            self._transport.set_protocol(self._protocol)

    def data_received(self, data: bytes) -> None:
        """Pass the bytes on (with the cache status header added to the head)."""
        out = self._reader.feed(data)
        if self._reader.done:
            self._restore()
        if out:
            self._protocol.data_received(out)

    def eof_received(self) -> bool | None:
        """The server closed its side: a body read to the end is complete."""
        self._reader.eof(failed=False)
        self._restore()
        result: bool | None = self._protocol.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection ended before the response was complete, or with it.

        Ended with no error and no end from the server, it was closed by the client: the
        caller left the body early (unless aiohttp had already failed it, as on a timeout).
        """
        exception = getattr(self._protocol, "exception", None)
        if exc is not None or (exception is not None and exception() is not None):
            self._reader.eof(failed=True)
        else:
            self._reader.leave()
        self._restore()
        self._protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        """Flow control of the request: aiohttp's business."""
        self._protocol.pause_writing()

    def resume_writing(self) -> None:
        """Flow control of the request: aiohttp's business."""
        self._protocol.resume_writing()
