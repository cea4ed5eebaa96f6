"""HTTP/1.1 response bytes: rendering a stored response, and reading a live one as it passes.

For a library that does its own HTTP parsing (aiohttp), the cache works on the bytes of the
connection: a replay is served as wire bytes the library parses like any response, and a
recording watches the live bytes go by without changing what the library receives (but for
the cache status header). For the others, :func:`stop_waiting` lets a recording look, without
waiting, whether a response its caller left had already ended.
"""

from __future__ import annotations

import select
import socket
from http import HTTPStatus

from .._capture import CACHE_STATUS_HEADER, replay_headers
from .._engine import Recording
from .._exchange import Headers, Response

__all__ = ["ResponseReader", "render", "stop_waiting"]

_NO_BODY_STATUSES = frozenset({204, 304})


def render(stored: Response, *, head: bool) -> list[bytes]:
    """The wire pieces of a stored response: head, then one HTTP chunk per stored chunk.

    A recording cut short (``stored.past_end`` set) is chunked and has no last chunk: its
    body stops where the caller left it, unfinished.
    """
    headers = replay_headers(stored.headers, "HIT")
    chunks = [c for c in stored.chunks if c]
    no_body = head or stored.status in _NO_BODY_STATUSES or stored.status < 200
    if no_body:
        pieces: list[bytes] = []
    elif stored.past_end is not None:
        headers.append(("transfer-encoding", "chunked"))
        pieces = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks]
    elif len(chunks) <= 1:
        headers.append(("content-length", str(len(chunks[0]) if chunks else 0)))
        pieces = chunks
    else:
        headers.append(("transfer-encoding", "chunked"))
        pieces = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks]
        pieces[-1] += b"0\r\n\r\n"
    try:
        reason = HTTPStatus(stored.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {stored.status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    if not pieces:
        return [head_bytes]
    # The head goes with the first chunk, each later chunk on its own, as a server sends them.
    return [head_bytes + pieces[0], *pieces[1:]]


def stop_waiting(sock: object) -> bool:
    """Shut the read side of a live connection's socket; whether that was possible.

    Afterwards a read returns at once: the bytes already received, then the end. So a
    recording whose caller left the stream can look one read further to see whether the body
    had already ended, without waiting for a server that may never finish (the connection is
    being given up anyway).
    """
    if not isinstance(sock, socket.socket):
        return False
    try:
        # A reader that stops at its end-of-stream event ([DONE]) often closes a moment
        # before the server's end of the body arrives: a short grace lets it arrive, so such
        # a stream is stored complete; a server still sending is not waited for.
        select.select([sock], [], [], _GRACE)
        # The plain socket's shutdown, also for TLS: ``SSLSocket.shutdown`` would drop the
        # TLS layer and let the read see raw records.
        socket.socket.shutdown(sock, socket.SHUT_RD)
    except (OSError, ValueError):
        return False
    return True


_GRACE = 0.05
"""Seconds a stream left early may wait for the end of a body already on its way."""


class ResponseReader:
    """Follows one live response through the connection and feeds its body to ``recording``.

    :meth:`feed` returns the bytes to hand on to the library at once: the same bytes, with
    the ``x-llm-cache-status: MISS`` header added to the response head. The recording gets
    the body as sent (still compressed, framing removed), one piece per HTTP chunk.
    """

    def __init__(self, recording: Recording, *, head: bool) -> None:
        self._recording = recording
        self._head_request = head
        self._buffer = b""
        self._out = bytearray()
        self._chunk = bytearray()
        self._state = "head"
        self._status = 0
        self._headers: Headers = ()
        self._left = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Watch ``data`` arrive; return what the library should receive."""
        if self.done:
            return data
        self._buffer += data
        while not self.done and self._step():
            pass
        if self.done:
            self._pass(len(self._buffer))
        out, self._out = bytes(self._out), bytearray()
        return out

    def eof(self, *, failed: bool) -> None:
        """The connection ended: the body is complete only if it was meant to run to here."""
        if not self.done:
            self._finish(failed=failed or self._state != "eof")

    def leave(self) -> None:
        """The client closed the connection before the response was through.

        The body passed on so far is kept, marked cut short; all of it but the blank line
        that ends a chunked body counts as complete, and without a head nothing is kept.
        """
        if self.done:
            return
        if self._state in ("head", "trailer"):
            self._finish(failed=self._state == "head")
            return
        if self._chunk:
            self._recording.add(bytes(self._chunk))
            self._chunk.clear()
        self.done = True
        self._recording.finish(self._status, self._headers, cut_short=True)

    def _step(self) -> bool:
        """Consume what can be consumed; ``False`` when more bytes are needed."""
        state = self._state
        if state == "head":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return False  # an unfinished head is held back
            block, self._buffer = self._buffer[: end + 4], self._buffer[end + 4 :]
            self._out += self._read_head(block)
        elif state == "end":
            self._finish(failed=False)
        elif state in ("eof", "length", "data"):
            size = len(self._buffer) if state == "eof" else min(self._left, len(self._buffer))
            self._chunk += self._pass(size)
            self._left -= size
            if state == "eof" or self._left:
                if state != "data" and self._chunk:
                    self._recording.add(bytes(self._chunk))
                    self._chunk.clear()
                return False
            if self._chunk:
                self._recording.add(bytes(self._chunk))
                self._chunk.clear()
            if state == "length":
                self._finish(failed=False)
            else:
                self._state = "crlf"
        else:  # "size", "crlf", "trailer": a line each
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return False
            line = self._pass(end + 2)[:-2]
            if state == "size":
                size = int(line.split(b";")[0].strip() or b"0", 16)
                self._state, self._left = ("trailer", 0) if size == 0 else ("data", size)
            elif state == "crlf":
                self._state = "size"
            elif not line:
                self._finish(failed=False)  # the blank line after the last chunk
        return True

    def _read_head(self, block: bytes) -> bytes:
        lines = block.decode("utf-8", "surrogateescape").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if 100 <= status < 200 and status != 101:
            return block  # an interim response (100 Continue); the real one follows
        if status in (0, 101):
            self._finish(failed=True)  # not HTTP we can follow, or a protocol switch
            return block
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip().lower(), value.strip()))
        self._status, self._headers = status, tuple(headers)
        framing = dict(self._headers)
        length = framing.get("content-length", "").strip()
        if self._head_request or status in _NO_BODY_STATUSES:
            self._state = "end"
        elif "chunked" in framing.get("transfer-encoding", "").lower():
            self._state = "size"
        elif length.isdigit():
            self._state, self._left = "length", int(length)
        else:
            self._state = "eof"
        return block[:-2] + f"{CACHE_STATUS_HEADER}: MISS\r\n\r\n".encode()

    def _pass(self, size: int) -> bytes:
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        self._out += piece
        return piece

    def _finish(self, *, failed: bool) -> None:
        self.done = True
        if failed:
            self._recording.finish_failed()
        else:
            self._recording.finish(self._status, self._headers)
