"""A local OpenAI- and Anthropic-compatible HTTP server for exercising pytest-llmcache.

Usage::

    with start_fake_provider() as provider:
        client = openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1")
        ...
        assert provider.count("/chat/completions") == 1

Path prefixes change how a reply is delivered (routes: ``fake_payloads`` and
``fake_payloads_more``).  They combine, written in this order, e.g. ``/gzip/counter/v1/...``:

``/gzip``
    The JSON body is gzip-compressed (``content-encoding: gzip``).
``/flaky``
    The first request with a given path and body gets a 429 (``retry-after: 0``), later ones
    the normal reply.
``/fail500``
    Every request gets a 500.
``/counter``
    The n-th request (from 1) with a given path and body gets its reply marked ``answer #n``:
    a chat completion's text ends with `` (answer #n)`` (a stream's last text delta too), other
    JSON gets a top-level ``"answer": n``.  ``reset()`` starts counting again.
``/reverse``
    Numbered like ``/counter``; the ``of``-th request is answered at once, and each one before
    it ``hold`` seconds after the next one was answered (query ``?hold=0.08&of=6``, the
    defaults; a request whose next one never comes is answered after ``REVERSE_WAIT``
    seconds).  So ``of`` identical requests sent at once are answered in reverse order of
    arrival, ``hold`` apart, however long they took to arrive.
``/slow``
    A streamed chat completion (``"stream": true``) of ``events`` SSE events with a pause of
    ``interval`` seconds between them (query ``?events=20&interval=0.25``, the defaults).
``/endless``
    A streamed chat completion that sends an event every ``interval`` (default 0.05) seconds
    until the client hangs up.

Each ``/slow`` and ``/endless`` stream is logged in ``FakeProvider.streams`` as a
``PacedStream``: how many events were written, and when the server noticed that the client
went away.  The handler stops writing as soon as the client closes the connection, and when
the provider closes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs

from fake_payloads import Reply, body_hash, build_reply, error_reply
from fake_payloads_more import build_more_reply, numbered, paced_chat_events

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FakeProvider", "PacedStream", "ServedRequest", "start_fake_provider"]

# Headers that must never end up in a cassette; tests assert on their absence.
SENSITIVE_HEADERS = (
    ("set-cookie", "__cf_bm=fakecookie123; path=/; HttpOnly"),
    ("openai-organization", "org-fake123"),
    ("anthropic-organization-id", "00000000-fake-org"),
)
STREAM_HEADERS = {"cache-control": "no-cache", "transfer-encoding": "chunked"}
PREFIXES = ("/gzip", "/flaky", "/fail500", "/counter", "/reverse", "/slow", "/endless")
# How long a ``/reverse`` request waits for the next one to be answered, at most.
REVERSE_WAIT = 10.0


@dataclass(frozen=True)
class ServedRequest:
    """One request as received: raw path (with prefixes and query), lower-cased headers, body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(eq=False)
class PacedStream:
    """A ``/slow`` or ``/endless`` stream as the server sent it (updated while it runs)."""

    path: str
    thread: threading.Thread
    """The handler thread; it ends once the client has gone."""
    events_sent: int = 0
    """SSE events written so far (final once ``client_gone`` or ``completed`` is set)."""
    completed: bool = False
    """Every planned event and the end of the body were written."""
    gone_at: float | None = None
    """``time.monotonic()`` when the server noticed the client had hung up."""
    client_gone: threading.Event = field(default_factory=threading.Event)
    """Set when the server noticed the client had hung up (or the provider closed)."""


class FakeProvider:
    """A local OpenAI- and Anthropic-compatible server on 127.0.0.1 that counts what it serves."""

    def __init__(self) -> None:
        """Bind an ephemeral port; serving starts with ``start()`` or ``with``."""
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.requests: list[ServedRequest] = []
        self.streams: list[PacedStream] = []
        """The ``/slow`` and ``/endless`` streams served, in the order they started."""
        self._lock = threading.Lock()
        self._seen_flaky: set[str] = set()
        self._answers: dict[str, int] = {}
        self._answered: dict[tuple[str, int], threading.Event] = {}
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> FakeProvider:
        """Serve on a daemon thread; calling it again is a no-op."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-provider", daemon=True
            )
            self._thread.start()
        return self

    def reset(self) -> None:
        """Forget served requests and streams, ``/flaky`` 429s and ``/counter`` numbers."""
        with self._lock:
            self.requests.clear()
            self.streams.clear()
            self._seen_flaky.clear()
            self._answers.clear()
            self._answered.clear()

    def count(self, path_suffix: str | None = None) -> int:
        """Requests served so far, or only those whose path (minus query) ends with the suffix."""
        with self._lock:
            if path_suffix is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path.partition("?")[0].endswith(path_suffix))

    def close(self) -> None:
        """Stop serving (ending any stream still running) and release the port."""
        self._closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        """Start serving (if not already) and return self."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the server."""
        self.close()

    def _record(self, request: ServedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _first_flaky_sighting(self, path: str, body: bytes) -> bool:
        key = _request_key(path, body)
        with self._lock:
            if key in self._seen_flaky:
                return False
            self._seen_flaky.add(key)
            return True

    def _next_answer(self, path: str, body: bytes) -> int:
        key = _request_key(path, body)
        with self._lock:
            self._answers[key] = number = self._answers.get(key, 0) + 1
            return number

    def _answered_event(self, path: str, body: bytes, number: int) -> threading.Event:
        """Set once the ``number``-th request with this path and body has been answered."""
        key = (_request_key(path, body), number)
        with self._lock:
            return self._answered.setdefault(key, threading.Event())

    def _start_stream(self, path: str) -> PacedStream:
        stream = PacedStream(path, threading.current_thread())
        with self._lock:
            self.streams.append(stream)
        return stream


def _request_key(path: str, body: bytes) -> str:
    return hashlib.sha256(path.encode() + b"\0" + body).hexdigest()


def _query_number(query: dict[str, list[str]], name: str, default: float) -> float:
    values = query.get(name)
    return float(values[0]) if values else default


def start_fake_provider() -> FakeProvider:
    """Create a provider and start serving; usable directly or as a context manager."""
    return FakeProvider().start()


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying a back-reference so handlers can record into the provider."""

    daemon_threads = True
    # Room for a burst of simultaneous connections (``/reverse`` is sent six at once).
    request_queue_size = 64

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Serves one keep-alive connection."""

    protocol_version = "HTTP/1.1"
    # Without this, headers and body go out as two small writes and Nagle plus
    # delayed ACKs stall every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    # Idle keep-alive connections would otherwise pin a thread forever after close().
    timeout = 30

    def handle(self) -> None:
        """Serve requests until the client goes away."""
        try:
            super().handle()
        except ConnectionError:
            # SDK clients drop idle keep-alive sockets with a reset; that is not a failure.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""

    def do_GET(self) -> None:
        """Handle GET."""
        self._handle()

    def do_POST(self) -> None:
        """Handle POST."""
        self._handle()

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            # Skip trailers up to the blank line that ends the message.
            while self.rfile.readline().strip():
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def _handle(self) -> None:
        provider = cast(_Server, self.server).provider
        body = self._read_body()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        provider._record(ServedRequest(self.command, self.path, headers, body))

        path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query)
        flags: set[str] = set()
        for prefix in PREFIXES:
            if path.startswith(prefix + "/"):
                flags.add(prefix)
                path = path[len(prefix) :]

        gzipped = "/gzip" in flags
        if "/flaky" in flags and provider._first_flaky_sighting(self.path, body):
            reply = error_reply(429, "rate limited", "rate_limit")
            self._send(reply, body, gzipped, {"retry-after": "0"})
        elif "/fail500" in flags:
            self._send(error_reply(500, "internal server error", "server_error"), body, gzipped)
        else:
            answer = None
            if flags & {"/counter", "/reverse"}:
                answer = provider._next_answer(self.path, body)
            turn = answer if "/reverse" in flags else None
            if turn is not None:
                hold, of = _query_number(query, "hold", 0.08), _query_number(query, "of", 6)
                if turn < of:
                    # Waiting for the next answer, rather than for a time set by this one's
                    # number, keeps the order however far apart the requests arrive.
                    provider._answered_event(self.path, body, turn + 1).wait(REVERSE_WAIT)
                    time.sleep(hold)
            try:
                self._answer(provider, path, query, body, flags, answer)
            finally:
                if turn is not None:
                    provider._answered_event(self.path, body, turn).set()

    def _answer(
        self,
        provider: FakeProvider,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        flags: set[str],
        answer: int | None,
    ) -> None:
        if flags & {"/slow", "/endless"}:
            self._send_paced(provider, path, query, body, "/endless" in flags, answer)
            return
        content_type = self.headers.get("content-type", "")
        reply = build_more_reply(self.command, path, content_type, body) or build_reply(
            self.command, path, content_type, body
        )
        self._send(reply if answer is None else numbered(reply, answer), body, "/gzip" in flags)

    def _send_paced(
        self,
        provider: FakeProvider,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        endless: bool,
        answer: int | None,
    ) -> None:
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = None
        if (
            self.command != "POST"
            or path != "/v1/chat/completions"
            or not isinstance(req, dict)
            or not req.get("stream")
        ):
            message = "/slow and /endless serve only streamed chat completions"
            self._send(error_reply(400, message, "invalid_request_error"), body, False)
            return
        total = None if endless else int(_query_number(query, "events", 20))
        interval = _query_number(query, "interval", 0.05 if endless else 0.25)
        suffix = "" if answer is None else f" (answer #{answer})"
        stream = provider._start_stream(self.path)
        self._send_head(200, "text/event-stream", body, STREAM_HEADERS)
        try:
            for number, event in enumerate(paced_chat_events(req, body, total, suffix)):
                if number and not self._pause(interval, provider._closing):
                    break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
                stream.events_sent += 1
            else:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                stream.completed = True
                return
        except ConnectionError:
            # The client hung up between our check and the write: the same as noticing it.
            pass
        # An unfinished chunked body cannot be followed by another response.
        self.close_connection = True
        stream.gone_at = time.monotonic()
        stream.client_gone.set()

    def _pause(self, seconds: float, closing: threading.Event) -> bool:
        """Wait ``seconds``; False as soon as the client hangs up or the provider closes.

        Watching the socket, rather than waiting for a write to fail, notices the hang-up at
        once: a write to a closed socket often succeeds and only the next one fails.
        """
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if closing.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable:
                try:
                    peeked = self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    return False
                if not peeked:
                    return False
                # The client sent something while reading a stream; not a hang-up, so just
                # sit out the pause.
                time.sleep(max(0.0, deadline - time.monotonic()))
                return True
        return not closing.is_set()

    def _send(
        self, reply: Reply, request_body: bytes, gzipped: bool, extra: dict[str, str] | None = None
    ) -> None:
        streaming = reply.events is not None
        default_type = "text/event-stream" if streaming else "application/json"
        if reply.events is not None:
            self._send_head(
                reply.status,
                reply.content_type or default_type,
                request_body,
                {**(extra or {}), **STREAM_HEADERS},
            )
            # One HTTP chunk per SSE event so clients really see an incremental stream.
            for event in reply.events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        payload = gzip.compress(reply.body, mtime=0) if gzipped else reply.body
        headers = dict(extra or {})
        if gzipped:
            headers["content-encoding"] = "gzip"
        headers["content-length"] = str(len(payload))
        self._send_head(reply.status, reply.content_type or default_type, request_body, headers)
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_head(
        self, status: int, content_type: str, request_body: bytes, extra: dict[str, str]
    ) -> None:
        """Status line, then the content type, the headers every reply has, and ``extra``."""
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in (
            *SENSITIVE_HEADERS,
            ("x-request-id", "req_" + body_hash(request_body)[:24]),
        ):
            self.send_header(name, value)
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
