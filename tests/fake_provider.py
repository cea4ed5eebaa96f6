"""A local OpenAI- and Anthropic-compatible HTTP server for exercising pytest-llmcache.

Usage::

    with start_fake_provider() as provider:
        client = openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1")
        ...
        assert provider.count("/chat/completions") == 1

Path prefixes (``/gzip``, ``/flaky``, ``/fail500``, combinable in that order) change how
a reply is delivered; see ``FakeProvider`` and ``fake_payloads`` for the routes.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, cast

from fake_payloads import Reply, body_hash, build_reply, error_reply
from fake_payloads_more import build_more_reply

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FakeProvider", "ServedRequest", "start_fake_provider"]

# Headers that must never end up in a cassette; tests assert on their absence.
SENSITIVE_HEADERS = (
    ("set-cookie", "__cf_bm=fakecookie123; path=/; HttpOnly"),
    ("openai-organization", "org-fake123"),
    ("anthropic-organization-id", "00000000-fake-org"),
)
PREFIXES = ("/gzip", "/flaky", "/fail500")


@dataclass(frozen=True)
class ServedRequest:
    """One request as received: raw path (with prefixes and query), lower-cased headers, body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeProvider:
    """A local OpenAI- and Anthropic-compatible server on 127.0.0.1 that counts what it serves."""

    def __init__(self) -> None:
        """Bind an ephemeral port; serving starts with ``start()`` or ``with``."""
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.requests: list[ServedRequest] = []
        self._lock = threading.Lock()
        self._seen_flaky: set[str] = set()
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
        """Forget served requests and which ``/flaky`` requests already got their 429."""
        with self._lock:
            self.requests.clear()
            self._seen_flaky.clear()

    def count(self, path_suffix: str | None = None) -> int:
        """Requests served so far, or only those whose path (minus query) ends with the suffix."""
        with self._lock:
            if path_suffix is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path.partition("?")[0].endswith(path_suffix))

    def close(self) -> None:
        """Stop serving and release the port."""
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
        key = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()
        with self._lock:
            if key in self._seen_flaky:
                return False
            self._seen_flaky.add(key)
            return True


def start_fake_provider() -> FakeProvider:
    """Create a provider and start serving; usable directly or as a context manager."""
    return FakeProvider().start()


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying a back-reference so handlers can record into the provider."""

    daemon_threads = True

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

        path = self.path.partition("?")[0]
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
            content_type = self.headers.get("content-type", "")
            reply = build_more_reply(self.command, path, content_type, body) or build_reply(
                self.command, path, content_type, body
            )
            self._send(reply, body, gzipped)

    def _send(
        self, reply: Reply, request_body: bytes, gzipped: bool, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(reply.status)
        streaming = reply.events is not None
        default_type = "text/event-stream" if streaming else "application/json"
        self.send_header("content-type", reply.content_type or default_type)
        for name, value in (
            *SENSITIVE_HEADERS,
            ("x-request-id", "req_" + body_hash(request_body)[:24]),
        ):
            self.send_header(name, value)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if reply.events is not None:
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            # One HTTP chunk per SSE event so clients really see an incremental stream.
            for event in reply.events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        payload = gzip.compress(reply.body, mtime=0) if gzipped else reply.body
        if gzipped:
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
