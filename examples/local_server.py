"""A small OpenAI-compatible server, to record the example cassettes without an API key.

``python examples/local_server.py [--port 8765]`` serves until Ctrl-C; a fixture can start it
with ``with serve(8765) as server: ...``. Standard library only. Its model is an echo, and
identical requests get identical bytes back:

- ``POST /v1/chat/completions`` answers "You said: <last user message>", as JSON or, with
  ``"stream": true``, as server-sent events with one word per chunk. Given ``tools``, it calls
  the first tool with its first required parameter set to the last word of the user's message;
  once the last message is a tool result, it answers "The tool says: <result>".
- ``POST /v1/embeddings`` derives each vector from a hash of its input, sent as floats or, with
  ``encoding_format: base64`` (the openai SDK's default), as little-endian float32.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_PORT", "LocalServer", "chat_chunks", "chat_completion", "embeddings", "serve"]

DEFAULT_PORT = 8765
CREATED = 1_700_000_000
"""The ``created`` timestamp of every answer: a fixed one keeps answers identical."""

Json = dict[str, Any]


def chat_completion(request: Json, digest: str) -> Json:
    """The ``chat.completion`` answering ``request``; ``digest`` (of its body) makes the ids."""
    messages: list[Json] = request.get("messages") or []
    last = messages[-1] if messages else {}
    user = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    said = f"The tool says: {_text(last)}" if last.get("role") == "tool" else f"You said: {user}"
    message: Json = {"role": "assistant", "content": said}
    if (tools := request.get("tools")) and last.get("role") != "tool":
        function = tools[0]["function"]
        schema = function.get("parameters") or {}
        required = schema.get("required") or list(schema.get("properties") or {})
        last_word = (re.findall(r"[\w'-]+", user) or [""])[-1]
        said = _dumps({required[0]: last_word} if required else {})
        call = {"name": function["name"], "arguments": said}
        tool_call = {"id": f"call_{digest[24:40]}", "type": "function", "function": call}
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    finish = "tool_calls" if "tool_calls" in message else "stop"
    asked, answered = sum(len(_text(m).split()) for m in messages), len(said.split())
    usage = dict(prompt_tokens=asked, completion_tokens=answered, total_tokens=asked + answered)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    return {
        "id": f"chatcmpl-{digest[:24]}",
        "object": "chat.completion",
        "created": CREATED,
        "model": request.get("model", "echo"),
        "choices": [choice],
        "usage": usage,
    }


def chat_chunks(request: Json, completion: Json) -> list[Json]:
    """The ``chat.completion.chunk`` events that stream ``completion``."""
    choice = completion["choices"][0]
    message = choice["message"]
    if "tool_calls" in message:
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        deltas: list[Json] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    else:
        words = re.findall(r"\s*\S+", message["content"])
        deltas = [{"role": "assistant", "content": ""}, *({"content": w} for w in words)]
    deltas.append({})
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": completion["model"],
    }
    finishes = [None] * (len(deltas) - 1) + [choice["finish_reason"]]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]}
        for d, f in zip(deltas, finishes, strict=True)
    ]
    if (request.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def embeddings(request: Json) -> Json:
    """The embeddings of ``request["input"]``: a hash of each text, scaled into [-1, 1)."""
    inputs = request.get("input", [])
    texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
    size = int(request.get("dimensions") or 8)
    data = []
    for index, text in enumerate(texts):
        # Multiples of 1/128 are exact in float32: the base64 and float answers agree exactly.
        vector = [(b - 128) / 128 for b in hashlib.shake_256(text.encode()).digest(size)]
        value: object = vector
        if request.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = dict.fromkeys(("prompt_tokens", "total_tokens"), sum(len(t.split()) for t in texts))
    return {"object": "list", "data": data, "model": request.get("model"), "usage": usage}


def _text(message: Json) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class _Handler(BaseHTTPRequestHandler):
    """Serves one keep-alive connection."""

    protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams
    disable_nagle_algorithm = True  # else small writes wait for delayed ACKs (~40 ms)
    timeout = 30  # an idle keep-alive connection does not pin its thread forever
    server: LocalServer

    def do_POST(self) -> None:
        """Answer a chat completion or embeddings request."""
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        path = self.path.partition("?")[0]
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if path not in ("/v1/chat/completions", "/v1/embeddings"):
            self._send_error(404, f"no route {path}: try /v1/chat/completions or /v1/embeddings")
        elif not isinstance(request, dict):
            self._send_error(400, "the request body must be a JSON object")
        elif path == "/v1/embeddings":
            self._send_json(200, embeddings(request))
        else:
            self._chat(request, hashlib.sha256(raw).hexdigest())

    def _chat(self, request: Json, digest: str) -> None:
        completion = chat_completion(request, digest)
        if not request.get("stream"):
            self._send_json(200, completion)
            return
        self._send_head(200, "text/event-stream; charset=utf-8", {"Transfer-Encoding": "chunked"})
        events = [_dumps(chunk) for chunk in chat_chunks(request, completion)] + ["[DONE]"]
        for event in events:
            data = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # one HTTP chunk per event
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status: int, payload: Json) -> None:
        body = _dumps(payload).encode()
        self._send_head(status, "application/json", {"Content-Length": str(len(body))})
        self.wfile.write(body)

    def _send_error(self, status: int, message: str) -> None:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        self._send_json(status, {"error": error})

    def _send_head(self, status: int, content_type: str, extra: dict[str, str]) -> None:
        # No Date header, so that identical requests get identical bytes. The account and
        # cookie headers imitate a real provider's: a cassette must never hold them.
        self.log_request(status)
        self.send_response_only(status)
        headers = {
            "Content-Type": content_type,
            **extra,
            "openai-organization": "org-local",
            "Set-Cookie": "session=local-example; Path=/; HttpOnly",
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def handle(self) -> None:
        """Serve requests until the client goes away."""
        try:
            super().handle()
        except ConnectionError:  # SDKs drop idle keep-alive sockets with a reset
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests only when run from the command line."""
        if self.server.verbose:
            super().log_message(format, *args)


class LocalServer(ThreadingHTTPServer):
    """The server; ``url`` is its OpenAI base URL. Closing it (or leaving ``with``) stops it."""

    daemon_threads = True

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
        """Bind ``host:port`` (port 0 picks a free one); serving starts with ``start``."""
        super().__init__((host, port), _Handler)
        self.url = f"http://{host}:{self.server_port}/v1"
        self.verbose = False
        self._thread = threading.Thread(target=self.serve_forever, name="local-openai")
        self._thread.daemon = True

    def start(self) -> LocalServer:
        """Serve on a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()

    def __exit__(self, *args: object) -> None:
        """Stop serving."""
        self.close()


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> LocalServer:
    """Start a server on a background thread; use it in ``with`` or call ``close()``.

    Raises ``OSError`` when the port is taken.
    """
    return LocalServer(port, host).start()


def main() -> None:
    """Serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = LocalServer(args.port, args.host)
    server.verbose = True
    print(f"OpenAI-compatible API on {server.url} (Ctrl-C stops it)", flush=True)
    with contextlib.suppress(KeyboardInterrupt), server:
        server.serve_forever()


if __name__ == "__main__":
    main()
