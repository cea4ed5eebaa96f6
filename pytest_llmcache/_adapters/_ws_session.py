"""WebSocket sessions, whatever library opens them: recorded frame by frame, replayed by a peer.

A session is one entry. Its key is the handshake (``GET`` of the ``ws://`` or ``wss://`` URL,
with the headers the key reads); its response is status 101 with the handshake's headers and,
as chunks, every message of the session in order, both ways: one JSON chunk each,
``{"from":"client","text":...}``, ``{"from":"server","base64":...}`` for binary messages (audio
stays as it came), ``{"from":"client","close":1000,"reason":""}`` for a close frame (code 1006:
the connection dropped without one).

Replay answers in memory with :class:`Peer`, a WebSocket server that speaks the RFC 6455 wire
format to the client library's own code: it accepts the handshake, sends the server's messages
and checks each client message against the recording. A message that differs, a session the
client leaves early or one that goes on past the recording fails the test, naming the message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

from .._diff import diff_requests
from .._engine import Recording, TestCache
from .._errors import ReplayMiss
from .._exchange import Headers, Request, Response
from .._messages import call, command
from .._secrets import mask_secrets

__all__ = ["CONTENT_TYPE", "Frame", "Peer", "Tap", "WireTap", "handshake_request"]

CONTENT_TYPE = "application/x-llm-cache-websocket"
"""The content type of a recorded session's 101 response (never sent to the client)."""

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
DROPPED = 1006
"""The close code that stands for a connection that ended without a close frame."""
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Handshake headers that belong to one connection (the accept answers the client's random
# key; an extension would change the wire format the peer speaks): never stored or replayed.
_CONNECTION_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "content-type",
        "content-length",
        "transfer-encoding",
    }
)
# Handshake request headers a library adds for the connection itself (the key is random):
# never part of the stored request.
_HANDSHAKE_HEADERS = frozenset(
    {
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
    }
)


@dataclass(frozen=True)
class Frame:
    """One message of a session: who sent it, its kind and its payload."""

    side: str
    """``client`` or ``server``."""
    kind: str
    """``text``, ``binary`` or ``close``."""
    data: bytes = b""
    code: int | None = None
    """A close frame's code (``None``: a close frame without one)."""
    reason: str = ""

    def chunk(self) -> bytes:
        """The frame as the entry stores it: one compact JSON document."""
        item: dict[str, object] = {"from": self.side}
        if self.kind == "close":
            item |= {"close": self.code, "reason": self.reason}
        elif self.kind == "text":
            item["text"] = self.data.decode("utf-8", "surrogateescape")
        else:
            item["base64"] = base64.b64encode(self.data).decode("ascii")
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_chunk(cls, chunk: bytes) -> Frame:
        """A stored chunk back as a frame (``ValueError`` if it is not one)."""
        item = json.loads(chunk)
        if not isinstance(item, dict) or item.get("from") not in ("client", "server"):
            raise ValueError("not a WebSocket frame")
        side = str(item["from"])
        if "close" in item:
            code = item["close"]
            if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
                raise ValueError("close must be a close code")
            return cls(side, "close", code=code, reason=str(item.get("reason") or ""))
        if isinstance(item.get("text"), str):
            return cls(side, "text", item["text"].encode("utf-8", "surrogateescape"))
        if isinstance(item.get("base64"), str):
            return cls(side, "binary", base64.b64decode(item["base64"], validate=True))
        raise ValueError("a frame holds text, base64 or close")

    def describe(self) -> str:
        """The frame as messages name it."""
        if self.kind == "close":
            return f"a close frame ({self.code})"
        return f"a {self.kind} message"


def handshake_request(url: str, headers: Iterable[tuple[str, str]]) -> Request:
    """The request a session is keyed by: ``GET`` of its URL with the handshake's headers."""
    pairs = tuple(
        (name, str(value))
        for name, value in ((str(n).lower(), v) for n, v in headers)
        if name not in _HANDSHAKE_HEADERS
    )
    return Request("GET", url, pairs, b"")


def stored_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """The handshake response's headers worth keeping, with the session's content type."""
    kept = [(n.lower(), v) for n, v in headers if n.lower() not in _CONNECTION_HEADERS]
    return (*kept, ("content-type", CONTENT_TYPE))


class Tap:
    """Collects a live session's messages both ways, then stores them in its recording.

    Adapters report frames as they pass (fragments are joined into their message); the
    session is stored once both sides have sent a close frame or the connection ended.
    """

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self._frames: list[Frame] = []
        self._partial: dict[str, tuple[str, bytearray]] = {}
        self._closed: set[str] = set()
        self._lock = threading.Lock()
        self.headers: Headers = ()
        """The handshake response's headers, set by the adapter once it has them."""

    def frame(self, side: str, opcode: int, payload: bytes, fin: bool = True) -> None:
        """A frame went by: ``side`` sent it."""
        with self._lock:
            if opcode in (TEXT, BINARY):
                self._partial[side] = ("text" if opcode == TEXT else "binary", bytearray())
            if opcode in (TEXT, BINARY, CONTINUATION) and side in self._partial:
                kind, data = self._partial[side]
                data += payload
                if fin:
                    del self._partial[side]
                    self._frames.append(Frame(side, kind, bytes(data)))
            elif opcode == CLOSE and side not in self._closed:
                self._closed.add(side)
                code, reason = _close_payload(payload)
                self._frames.append(Frame(side, "close", code=code, reason=reason))
            done = len(self._closed) == 2
        if done:
            self.finish()

    def close(self, side: str, code: int | None, reason: str) -> None:
        """A close frame went by, reported by its code and reason."""
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
        self.frame(side, CLOSE, payload)

    def finish(self) -> None:
        """The connection ended: store the session (once)."""
        with self._lock:
            if self._recording.done:
                return
            frames = list(self._frames)
            if not self._closed:
                frames.append(Frame("server", "close", code=DROPPED))
        for frame in frames:
            self._recording.add(frame.chunk())
        self._recording.finish(101, stored_headers(self.headers))

    def failed(self) -> None:
        """The handshake failed: store nothing."""
        self._recording.finish_failed()


class WireTap:
    """Reads a live session's bytes, both ways, for a :class:`Tap`.

    For a library whose frames are only seen as bytes on the socket: each side's bytes start
    with its half of the HTTP handshake, then frames (the client's masked). Messages
    compressed with ``permessage-deflate`` are stored as they were before compression.
    """

    def __init__(self, recording: Recording) -> None:
        self.tap = Tap(recording)
        self._buffers = {"client": bytearray(), "server": bytearray()}
        self._opened: set[str] = set()
        self._deflate = False
        self._inflaters: dict[str, zlib._Decompress] = {}
        self._compressed: set[str] = set()
        self._failed = False

    def client(self, data: bytes) -> None:
        """Bytes the client wrote."""
        self._feed("client", data)

    def server(self, data: bytes) -> None:
        """Bytes the server sent."""
        self._feed("server", data)

    def finish(self) -> None:
        """The connection ended: store the session, unless its handshake failed."""
        if not self._failed and "server" in self._opened:
            self.tap.finish()
        elif not self._failed:
            self._failed = True
            self.tap.failed()

    def _feed(self, side: str, data: bytes) -> None:
        if self._failed:
            return
        buffer = self._buffers[side]
        buffer += data
        if side not in self._opened:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            self._opened.add(side)
            if side == "server" and not self._handshake(head):
                return
        while buffer:
            rsv1 = bool(buffer[0] & 0x40)
            parsed = _parse_frame(buffer)
            if parsed is None:
                break
            opcode, fin, payload, size = parsed
            del buffer[:size]
            if opcode in (TEXT, BINARY, CONTINUATION):
                payload = self._inflate(side, opcode, rsv1, fin, payload)
            self.tap.frame(side, opcode, payload, fin)

    def _handshake(self, head: bytes) -> bool:
        """Read the server's answer; a refused handshake stores nothing."""
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers.append((name.strip(), value.strip()))
        if len(status) < 2 or status[1] != "101":
            self._failed = True
            self.tap.failed()
            return False
        self.tap.headers = tuple(headers)
        self._deflate = any(
            n.lower() == "sec-websocket-extensions" and "permessage-deflate" in v.lower()
            for n, v in headers
        )
        return True

    def _inflate(self, side: str, opcode: int, rsv1: bool, fin: bool, payload: bytes) -> bytes:
        if not self._deflate:
            return payload
        if opcode != CONTINUATION and rsv1:
            self._compressed.add(side)
        elif opcode != CONTINUATION:
            self._compressed.discard(side)
        if side not in self._compressed:
            return payload
        # One inflater a side for the whole session: it reads messages compressed with or
        # without context takeover alike.
        inflater = self._inflaters.setdefault(side, zlib.decompressobj(-zlib.MAX_WBITS))
        data = inflater.decompress(payload)
        if fin:
            data += inflater.decompress(b"\x00\x00\xff\xff")
        return data


class Peer:
    """The server side of a replayed session, in memory (no I/O of its own).

    :meth:`receive` takes the bytes the client wrote and returns the bytes to give it back;
    :attr:`ended` says the server has closed the connection.
    """

    def __init__(self, test: TestCache, request: Request, response: Response) -> None:
        self._test = test
        self._request = request
        self._headers = [(n, v) for n, v in response.headers if n not in _CONNECTION_HEADERS]
        try:
            self._frames = [Frame.from_chunk(chunk) for chunk in response.chunks]
        except ValueError as exc:
            self._fail(f"its recording is not a WebSocket session ({exc})", frame=0)
        self._next = 0
        self._buffer = bytearray()
        self._opened = False
        self._partial: tuple[int, bytearray] | None = None
        self.ended = False

    def receive(self, data: bytes) -> bytes:
        """Take the client's bytes; return the server's answer (maybe nothing)."""
        self._buffer += data
        out = bytearray()
        if not self._opened:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            self._opened = True
            out += self._accept(head)
            out += self._server_frames()
        while not self.ended:
            parsed = _parse_frame(self._buffer)
            if parsed is None:
                break
            opcode, fin, payload, size = parsed
            del self._buffer[:size]
            out += self._client_frame(opcode, fin, payload)
        return bytes(out)

    def _accept(self, head: bytes) -> bytes:
        key = b""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "upgrade: websocket",
            "connection: Upgrade",
            f"sec-websocket-accept: {accept}",
            *(f"{name}: {value}" for name, value in self._headers),
            "x-llm-cache-status: replayed",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _client_frame(self, opcode: int, fin: bool, payload: bytes) -> bytes:
        if opcode == PING:
            return _encode_frame(PONG, payload)
        if opcode == PONG:
            return b""
        if opcode in (TEXT, BINARY):
            self._partial = (opcode, bytearray())
        if opcode in (TEXT, BINARY, CONTINUATION):
            if self._partial is None:
                return b""
            first, data = self._partial
            data += payload
            if not fin:
                return b""
            self._partial = None
            kind = "text" if first == TEXT else "binary"
            return self._check(Frame("client", kind, bytes(data)))
        if opcode == CLOSE:
            code, reason = _close_payload(payload)
            return self._check(Frame("client", "close", code=code, reason=reason))
        return b""

    def _check(self, live: Frame) -> bytes:
        """Match the client's message with the recording's next one, then answer it."""
        number = self._next + 1
        expected = self._frames[self._next] if self._next < len(self._frames) else None
        if live.kind == "close":
            # Server messages the client closed before reading were sent in the recording
            # too: what must match is that the client closed here and not before.
            while expected is not None and expected.side == "server" and expected.kind != "close":
                self._next += 1
                expected = self._frames[self._next] if self._next < len(self._frames) else None
            if expected is None or expected.side == "server":
                # The server closed first when recording: the client's answer is expected.
                self.ended = True
                return b""
            if expected.kind != "close":
                self._fail(
                    f"the client closed it at message {number}, where the recording has the "
                    f"client send {expected.describe()} (the session was left early)",
                    frame=number,
                )
            self._next += 1
            return self._server_frames(closing=True)
        if expected is None or expected.kind == "close":
            self._fail(
                f"the client sent {live.describe()} as message {number}, past the end of the "
                f"recording (its messages end with message {number - 1})",
                frame=number,
            )
        if expected.side != "client" or expected.kind != live.kind or expected.data != live.data:
            self._fail(self._difference(number, expected, live), frame=number)
        self._next += 1
        return self._server_frames()

    def _server_frames(self, *, closing: bool = False) -> bytes:
        """The server's messages up to the client's next one."""
        out = bytearray()
        while self._next < len(self._frames) and self._frames[self._next].side == "server":
            frame = self._frames[self._next]
            self._next += 1
            if frame.kind == "close":
                if frame.code == DROPPED:
                    self.ended = True
                    break
                out += _encode_frame(CLOSE, _close_bytes(frame))
                closing = closing or self._client_closed()
                continue
            out += _encode_frame(TEXT if frame.kind == "text" else BINARY, frame.data)
        if closing:
            self.ended = True
        return bytes(out)

    def _client_closed(self) -> bool:
        return any(f.side == "client" and f.kind == "close" for f in self._frames[: self._next])

    def _difference(self, number: int, expected: Frame, live: Frame) -> str:
        if expected.side != "client" or expected.kind != live.kind:
            wanted = (
                f"the server send {expected.describe()}"
                if expected.side == "server"
                else f"the client send {expected.describe()}"
            )
            return (
                f"the client sent {live.describe()} as message {number}, "
                f"where the recording has {wanted}"
            )
        recorded = Request("WS", self._request.url, (), expected.data)
        now = Request("WS", self._request.url, (), live.data)
        lines = diff_requests(recorded, now) or ["body: differs"]
        shown = "\n".join(f"    {line}" for line in lines[:12])
        return f"message {number} (sent by the client) differs from the recording:\n{shown}"

    def _fail(self, problem: str, *, frame: int) -> NoReturn:
        test = self._test
        fix = command("record", test.nodeid) if test.fix is None else test.fix("record")
        message = mask_secrets(
            f"pytest-llmcache: the WebSocket session {call(self._request)} does not follow "
            f"its recording: {problem}\n"
            f"  test:     {test.nodeid}\n"
            f"  cassette: {test.engine.display(test.path)}\n"
            f"  message:  {frame}\n"
            f"  re-record it: {fix}"
        )
        # Kept by the test too: it fails even if the client library swallows the error.
        test.messages.append(message)
        test.counts.missed += 1
        self.ended = True
        raise ReplayMiss(message)


def _close_payload(payload: bytes) -> tuple[int | None, str]:
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


def _close_bytes(frame: Frame) -> bytes:
    if frame.code is None:
        return b""
    return struct.pack("!H", frame.code) + frame.reason.encode()


def _parse_frame(buffer: bytearray) -> tuple[int, bool, bytes, int] | None:
    """The first whole frame of ``buffer``: opcode, fin, unmasked payload and its size."""
    if len(buffer) < 2:
        return None
    fin = bool(buffer[0] & 0x80)
    opcode = buffer[0] & 0x0F
    masked = bool(buffer[1] & 0x80)
    length = buffer[1] & 0x7F
    at = 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length = struct.unpack("!H", buffer[2:4])[0]
        at = 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length = struct.unpack("!Q", buffer[2:10])[0]
        at = 10
    mask = b""
    if masked:
        if len(buffer) < at + 4:
            return None
        mask = bytes(buffer[at : at + 4])
        at += 4
    if len(buffer) < at + length:
        return None
    payload = bytes(buffer[at : at + length])
    if masked:
        payload = _unmask(payload, mask)
    return opcode, fin, payload, at + length


def _unmask(payload: bytes, mask: bytes) -> bytes:
    # XOR as one big integer: fast enough for audio frames of hundreds of kilobytes.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def _encode_frame(opcode: int, payload: bytes) -> bytes:
    """A whole, unmasked frame, as a server sends it."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload
