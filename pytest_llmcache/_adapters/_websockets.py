"""websockets: the asyncio and sync clients, where each opens its connection.

``websockets.asyncio.client.connect.open_tcp_connection`` and
``websockets.sync.client.connect``'s ``open_connection`` are where a session gets its
connection; patching them reaches every caller, the OpenAI SDK's Realtime connection included
(it subclasses the asyncio ``connect``). A replay gives the library's own connection an
in-memory transport whose other end is a :class:`~._ws_session.Peer`, so nothing connects and
every method of the connection behaves as it does live. A recording gets the real connection,
with its sans-I/O protocol watched as messages pass both ways (:class:`~._ws_session.Tap`).
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._current import current, handling, is_handling
from .._engine import Recording, TestCache
from .._exchange import Request, Response
from ._swap import is_swapped, swap
from ._ws_session import Peer, Tap, handshake_request

__all__ = ["patch"]


def patch(lib: ModuleType) -> Callable[[], None] | None:
    """Patch both clients of ``websockets``; return the undo (``None`` if done already)."""
    async_connect: Any = importlib.import_module("websockets.asyncio.client").connect
    if is_swapped(async_connect.open_tcp_connection):
        return None
    swaps: list[tuple[Any, str, Any]] = [
        (async_connect, "open_tcp_connection", _async_opener(async_connect.open_tcp_connection))
    ]
    try:
        sync_client: Any = importlib.import_module("websockets.sync.client")
    except ImportError:
        sync_client = None
    sync_connect = getattr(sync_client, "reconnect", None)
    if sync_connect is not None and hasattr(sync_connect, "open_connection"):
        swaps.append(
            (sync_connect, "open_connection", _sync_opener(sync_connect.open_connection, lib))
        )
    return swap(swaps)


def _decide(self: Any) -> tuple[TestCache, Request, Response | Recording] | None:
    """The session's decision, or ``None`` when the connection is not the cache's to handle."""
    test = current()
    if test is None or is_handling():
        return None
    headers = importlib.import_module("websockets.datastructures").Headers(
        self.additional_headers or {}
    )
    pairs = list(headers.raw_items())
    if self.user_agent_header is not None and "user-agent" not in headers:
        pairs.append(("user-agent", self.user_agent_header))
    request = handshake_request(self.uri, pairs)
    return test, request, test.decide(request)


def _watch(connection: Any, recording: Recording) -> Tap:
    """Report the messages of a live connection to a tap, both ways, through its protocol."""
    tap = Tap(recording)
    protocol = connection.protocol
    send_text, send_binary = protocol.send_text, protocol.send_binary
    send_continuation, send_close = protocol.send_continuation, protocol.send_close
    events_received, receive_eof = protocol.events_received, protocol.receive_eof
    opcodes = importlib.import_module("websockets.frames")

    def text(data: Any, fin: bool = True) -> None:
        send_text(data, fin)
        tap.frame("client", 0x1, bytes(data), fin)

    def binary(data: Any, fin: bool = True) -> None:
        send_binary(data, fin)
        tap.frame("client", 0x2, bytes(data), fin)

    def continuation(data: Any, fin: bool) -> None:
        send_continuation(data, fin)
        tap.frame("client", 0x0, bytes(data), fin)

    def close(code: int | None = None, reason: str = "") -> None:
        send_close(code, reason)
        tap.close("client", None if code is None else int(code), reason)

    def events() -> list[Any]:
        received: list[Any] = events_received()
        for event in received:
            if isinstance(event, opcodes.Frame):
                if connection.response is not None and not tap.headers:
                    tap.headers = tuple(connection.response.headers.raw_items())
                tap.frame("server", int(event.opcode), bytes(event.data), event.fin)
        return received

    def eof() -> None:
        receive_eof()
        if connection.response is not None and not tap.headers:
            tap.headers = tuple(connection.response.headers.raw_items())
        tap.finish()

    protocol.send_text, protocol.send_binary = text, binary
    protocol.send_continuation, protocol.send_close = continuation, close
    protocol.events_received, protocol.receive_eof = events, eof
    return tap


def _async_opener(original: Any) -> Any:
    async def open_tcp_connection(self: Any) -> Any:
        decided = _decide(self)
        if decided is None:
            return await original(self)
        test, request, decision = decided
        if isinstance(decision, Response):
            connection = self.factory(self.ws_uri)
            transport = _ReplayTransport(
                connection, Peer(test, request, decision), asyncio.get_running_loop()
            )
            connection.connection_made(transport)
            return connection
        try:
            with handling():
                connection = await original(self)
        except BaseException:
            decision.finish_failed()
            raise
        _watch(connection, decision)
        return connection

    return open_tcp_connection


def _sync_opener(original: Any, lib: ModuleType) -> Any:
    def open_connection(self: Any, deadline: Any) -> Any:
        decided = _decide(self)
        if decided is None:
            return original(self, deadline)
        test, request, decision = decided
        if isinstance(decision, Response):
            client, server = socket.socketpair()
            sock = _ReplaySocket(Peer(test, request, decision), server, client.detach())
            protocol_cls = importlib.import_module("websockets.client").ClientProtocol
            protocol = protocol_cls(self.ws_uri, **self.protocol_kwargs)
            connection = self.create_connection(sock, protocol, **self.connection_kwargs)
            try:
                connection.handshake(
                    self.additional_headers, self.user_agent_header, deadline.timeout()
                )
            except BaseException:
                connection.close_socket()
                raise
            return connection
        create = self.create_connection

        def watched(sock: Any, protocol: Any, **kwargs: Any) -> Any:
            # Watched from its creation: the server may speak first, during the handshake,
            # and the library's reader thread starts before ``open_connection`` returns.
            connection = create(sock, protocol, **kwargs)
            _watch(connection, decision)
            return connection

        self.create_connection = watched
        try:
            with handling():
                return original(self, deadline)
        except BaseException:
            decision.finish_failed()
            raise
        finally:
            self.create_connection = create

    return open_connection


class _ReplaySocket(socket.socket):
    """The client's end of a socket pair: what it sends goes to the peer, whose answer is
    written from the other end, so the library's reader thread finds it as from a server."""

    def __init__(self, peer: Peer, server: socket.socket, fileno: int) -> None:
        super().__init__(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno)
        self._peer = peer
        self._server = server

    def sendall(self, data: Any, flags: int = 0) -> None:
        """The client's bytes: answered by the peer (a miss raises here, in the sender)."""
        if self._peer.ended:
            raise BrokenPipeError("the replayed session has ended")
        out = self._peer.receive(bytes(data))
        if out:
            self._server.sendall(out)
        if self._peer.ended:
            self._server.close()

    def close(self) -> None:
        """Close both ends."""
        self._server.close()
        super().close()


class _ReplayTransport(asyncio.Transport):
    """An in-memory transport: what the client writes goes to the peer, whose answer comes
    back on the next turn of the event loop, as from a socket."""

    def __init__(self, protocol: Any, peer: Peer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._protocol = protocol
        self._peer = peer
        self._loop = loop
        self._closing = False
        self._paused = False
        self._pending = bytearray()

    def write(self, data: Any) -> None:
        """The client's bytes: answered by the peer (a miss raises here, in the sender)."""
        if self._closing:
            return
        out = self._peer.receive(bytes(data))
        if out:
            self._pending += out
            self._loop.call_soon(self._deliver)
        if self._peer.ended:
            self._loop.call_soon(self.close)

    def _deliver(self) -> None:
        if self._pending and not self._closing and not self._paused:
            data = bytes(self._pending)
            self._pending.clear()
            self._protocol.data_received(data)

    def writelines(self, list_of_data: Any) -> None:
        """Several writes in one."""
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """The client's side is done; the peer closes after the close frames."""

    def can_write_eof(self) -> bool:
        """Like a TCP socket."""
        return True

    def get_write_buffer_size(self) -> int:
        """Nothing is ever waiting to be written."""
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """No limits: nothing waits."""
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Nothing to limit."""

    def pause_reading(self) -> None:
        """Hold the answer back until the reader catches up."""
        self._paused = True

    def resume_reading(self) -> None:
        """Send the rest of the answer."""
        self._paused = False
        self._loop.call_soon(self._deliver)

    def is_reading(self) -> bool:
        """Whether answers flow."""
        return not self._paused

    def is_closing(self) -> bool:
        """Whether the transport was closed."""
        return self._closing

    def close(self) -> None:
        """Deliver what is left, then tell the protocol the connection is gone."""
        if not self._closing:
            self._deliver()
            self._closing = True
            self._loop.call_soon(self._lost)

    def _lost(self) -> None:
        self._protocol.connection_lost(None)

    def abort(self) -> None:
        """Close at once."""
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """No socket, peer or TLS details: there is no network."""
        return default
