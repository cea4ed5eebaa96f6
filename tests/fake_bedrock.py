"""A local AWS Bedrock runtime on 127.0.0.1: what boto3 and ``AnthropicBedrock`` call.

Usage::

    with start_fake_bedrock() as bedrock:
        client = boto3.client("bedrock-runtime", endpoint_url=bedrock.url, ...)
        client.converse(modelId="fake.model-v1:0", messages=[...])
        assert bedrock.count("/converse") == 1

Routes, for any model id (URL-quoted, as botocore sends it):

``POST /model/{id}/converse``
    A Converse answer as JSON, echoing the last user text, with ``usage.inputTokens`` /
    ``outputTokens``.
``POST /model/{id}/converse-stream``
    The same answer as an ``application/vnd.amazon.eventstream``: ``messageStart``, one
    ``contentBlockDelta`` per word, ``contentBlockStop``, ``messageStop`` and ``metadata``
    (with the usage).
``POST /model/{id}/invoke``
    An Anthropic Messages answer (the body Bedrock's Anthropic models take and give).
``POST /model/{id}/invoke-with-response-stream``
    The Anthropic Messages stream, each event base64 inside a ``chunk`` frame's
    ``{"bytes": ...}``, as Bedrock wraps it.

Frames are written in HTTP chunks that do not follow frame boundaries, as a real connection
may deliver them. The frames are built here with their own small
encoder, independent of the code under test. Each request is logged with its headers, so a
test can see the SigV4 material that was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["BedrockRequest", "FakeBedrock", "frame", "start_fake_bedrock"]

EVENT_STREAM = "application/vnd.amazon.eventstream"


@dataclass(frozen=True)
class BedrockRequest:
    """One request as received: path, lower-cased headers, body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeBedrock:
    """The fake runtime: serves on a daemon thread and counts what it serves."""

    def __init__(self) -> None:
        """Bind an ephemeral port on 127.0.0.1; serving starts with ``start()`` or ``with``."""
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.requests: list[BedrockRequest] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> FakeBedrock:
        """Serve on a daemon thread; calling it again is a no-op."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fake-bedrock", daemon=True
            )
            self._thread.start()
        return self

    def reset(self) -> None:
        """Forget the requests served."""
        with self._lock:
            self.requests.clear()

    def count(self, path_suffix: str | None = None) -> int:
        """Requests served so far, or only those whose path ends with the suffix."""
        with self._lock:
            if path_suffix is None:
                return len(self.requests)
            return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeBedrock:
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

    def _record(self, request: BedrockRequest) -> None:
        with self._lock:
            self.requests.append(request)


def start_fake_bedrock() -> FakeBedrock:
    """Create a fake runtime and start serving; usable directly or as a context manager."""
    return FakeBedrock().start()


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream frame with string headers (a small encoder of the fake's own)."""
    raw = bytearray()
    for name, value in headers.items():
        encoded = value.encode()
        raw += bytes([len(name.encode())]) + name.encode() + b"\x07"
        raw += struct.pack(">H", len(encoded)) + encoded
    prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + bytes(raw) + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(event_type: str, document: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json"}
    headers[":message-type"] = "event"
    return frame(headers, json.dumps(document, separators=(",", ":")).encode())


def _last_text(request: dict[str, Any]) -> str:
    """The last user text of a Converse or an Anthropic Messages request."""
    for message in reversed(request.get("messages") or []):
        content = message.get("content")
        if isinstance(content, str):
            return content
        for block in content or []:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                return str(block["text"])
    return ""


def _padding(text: str) -> str:
    # Bedrock pads each event with "p" so lengths do not reveal the text.
    return "abcdefghijklmnopqrstuvwxyz"[: 26 - len(text) % 26]


def converse(request: dict[str, Any]) -> dict[str, Any]:
    """The Converse answer to ``request``."""
    text = "Echo: " + _last_text(request)
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 11, "outputTokens": len(text.split()), "totalTokens": 0},
        "metrics": {"latencyMs": 42},
    }


def converse_events(request: dict[str, Any]) -> list[bytes]:
    """The Converse stream answering ``request``, one frame per event."""
    words = ("Echo: " + _last_text(request)).split(" ")
    frames = [_event("messageStart", {"p": _padding(""), "role": "assistant"})]
    for index, word in enumerate(words):
        delta = word if index == 0 else " " + word
        document = {"contentBlockIndex": 0, "delta": {"text": delta}, "p": _padding(delta)}
        frames.append(_event("contentBlockDelta", document))
    frames.append(_event("contentBlockStop", {"contentBlockIndex": 0, "p": "abc"}))
    frames.append(_event("messageStop", {"p": "abcd", "stopReason": "end_turn"}))
    usage = {"inputTokens": 11, "outputTokens": len(words), "totalTokens": 11 + len(words)}
    frames.append(_event("metadata", {"metrics": {"latencyMs": 42}, "p": "ab", "usage": usage}))
    return frames


def anthropic_message(request: dict[str, Any], model: str) -> dict[str, Any]:
    """The Anthropic Messages answer to ``request``, as Bedrock's Anthropic models give it."""
    text = "Echo: " + _last_text(request)
    return {
        "id": "msg_bdrk_" + hashlib.sha256(text.encode()).hexdigest()[:20],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 13, "output_tokens": len(text.split())},
    }


def anthropic_events(request: dict[str, Any], model: str) -> list[bytes]:
    """The Anthropic Messages stream, each event base64 in a ``chunk`` frame."""
    message = anthropic_message(request, model)
    text = message["content"][0]["text"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": 13, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for index, word in enumerate(text.split(" ")):
        delta = {"type": "text_delta", "text": word if index == 0 else " " + word}
        events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 13,
                "outputTokenCount": message["usage"]["output_tokens"],
            },
        },
    ]
    frames = []
    for event in events:
        raw = json.dumps(event, separators=(",", ":")).encode()
        payload = {"bytes": base64.b64encode(raw).decode(), "p": _padding(raw.decode())}
        frames.append(_event("chunk", payload))
    return frames


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bedrock: FakeBedrock) -> None:
        self.bedrock = bedrock
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging."""

    def do_POST(self) -> None:
        """Answer one Bedrock runtime call."""
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.bedrock._record(BedrockRequest("POST", self.path, headers, body))
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 4 or parts[1] != "model":
            self._send(404, "application/json", b'{"message":"unknown route"}')
            return
        model, action = unquote(parts[2]), parts[3]
        request = json.loads(body or b"{}")
        if action == "converse":
            self._send(200, "application/json", _compact(converse(request)))
        elif action == "invoke":
            self._send(200, "application/json", _compact(anthropic_message(request, model)))
        elif action == "converse-stream":
            self._stream(converse_events(request))
        elif action == "invoke-with-response-stream":
            self._stream(anthropic_events(request, model))
        else:
            self._send(404, "application/json", b'{"message":"unknown action"}')

    def _head(self, status: int, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("x-amzn-requestid", "00000000-0000-4000-8000-000000000001")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self._head(status, content_type, {"content-length": str(len(payload))})
        self.wfile.write(payload)
        self.wfile.flush()

    def _stream(self, frames: list[bytes]) -> None:
        self._head(200, EVENT_STREAM, {"transfer-encoding": "chunked"})
        # Chunks that do not follow frames: the first frame cut in two, its second half sent
        # with the whole second frame.
        half = len(frames[0]) // 2
        pieces = [frames[0][:half], frames[0][half:] + b"".join(frames[1:2]), *frames[2:]]
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()
