"""Deterministic response builders for the fake OpenAI/Anthropic provider.

Everything here is a pure function of the request: identical request bytes always
produce byte-identical replies, which is what lets tests compare recorded cassettes
against live responses.  Transport concerns (prefixes, gzip, 429s, chunking) live in
``fake_provider``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

CREATED = 1767225600
WORDS_PER_PIECE = 4
TOOL_ARGUMENTS = json.dumps({"city": "Paris"})
MODELS = ("gpt-fake", "text-embedding-fake", "claude-fake")
JSON_ROUTES = ("/v1/chat/completions", "/v1/embeddings", "/v1/messages")


@dataclass(frozen=True)
class Reply:
    """What to answer: a JSON body, or SSE events when ``events`` is not None."""

    status: int
    body: bytes = b""
    events: tuple[bytes, ...] | None = None
    content_type: str | None = None
    """Sent as is when set; otherwise JSON, or ``text/event-stream`` for events."""


def body_hash(body: bytes) -> str:
    """Hex sha256 of the raw request body, the seed for every derived id."""
    return hashlib.sha256(body).hexdigest()


def dumps(obj: object) -> bytes:
    """Compact JSON, so byte-for-byte comparisons do not depend on whitespace."""
    return json.dumps(obj, separators=(",", ":")).encode()


def json_reply(obj: object, status: int = 200) -> Reply:
    """A non-streamed JSON reply."""
    return Reply(status, dumps(obj))


def error_reply(status: int, message: str, kind: str) -> Reply:
    """An OpenAI-shaped JSON error, which both SDKs turn into their APIStatusError."""
    return json_reply({"error": {"message": message, "type": kind}}, status)


def word_count(text: str) -> int:
    """Token stand-in: whitespace-separated words (at least 1, like real usage)."""
    return max(1, len(text.split()))


def split_pieces(text: str) -> list[str]:
    """Split into ~4-word pieces whose concatenation is exactly ``text``."""
    words = text.split(" ")
    pieces = [
        " ".join(words[i : i + WORDS_PER_PIECE]) for i in range(0, len(words), WORDS_PER_PIECE)
    ]
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]


def content_text(content: object) -> str:
    """Flatten an OpenAI or Anthropic message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    segments: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            segments.append(str(part.get("text", "")))
        elif kind in ("image_url", "image", "input_image"):
            segments.append("[image]")
        elif kind == "tool_result":
            segments.append(content_text(part.get("content")))
    return " ".join(segments)


def embedding_vector(item: object) -> list[float]:
    """Four floats from the input's hash; each is k/128, so float32 round-trips exactly."""
    raw = item if isinstance(item, str) else json.dumps(item)
    digest = hashlib.sha256(raw.encode()).digest()
    return [(b - 128) / 128 for b in digest[:4]]


def _chat_answer(req: JSON, digest: str) -> tuple[str | None, JSON | None]:
    """Decide the assistant's reply: (text, None) or (None, tool_call)."""
    messages = req.get("messages") or []
    last: JSON = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    text = content_text(last.get("content"))
    called = {
        c.get("function", {}).get("name")
        for m in messages
        if isinstance(m, dict)
        for c in m.get("tool_calls") or []
    }
    # An agent loop: each tool offered is called once, in order, then the model answers.
    names = [t.get("function", {}).get("name", "tool") for t in req.get("tools") or []]
    uncalled = [n for n in names if n not in called]
    if last.get("role") == "tool" and not uncalled:
        return "Tool said: " + text, None
    if uncalled and (last.get("role") == "tool" or not called):
        name = uncalled[0]
        call = {
            "id": "call_" + digest[:8],
            "type": "function",
            "function": {"name": name, "arguments": TOOL_ARGUMENTS},
        }
        return None, call
    return "Echo: " + text, None


def _chat_usage(req: JSON, answer: str) -> JSON:
    prompt = sum(
        word_count(content_text(m.get("content")))
        for m in req.get("messages") or []
        if isinstance(m, dict)
    )
    completion = word_count(answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_completion(req: JSON, body: bytes) -> Reply:
    """``POST /v1/chat/completions``, streamed or not."""
    digest = body_hash(body)
    text, call = _chat_answer(req, digest)
    usage = _chat_usage(req, text if text is not None else TOOL_ARGUMENTS)
    finish = "stop" if call is None else "tool_calls"
    base: JSON = {
        "id": "chatcmpl-" + digest[:12],
        "created": CREATED,
        "model": req.get("model", MODELS[0]),
    }
    if not req.get("stream"):
        message: JSON = {"role": "assistant", "content": text, "refusal": None}
        if call is not None:
            message["tool_calls"] = [call]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return json_reply(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def chunk(delta: JSON, finish_reason: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "object": "chat.completion.chunk", "choices": [choice]}

    chunks: list[JSON] = []
    if call is None:
        chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        chunks.extend(chunk({"content": piece}) for piece in split_pieces(text or ""))
    else:
        # OpenAI sends id/name once, then the arguments string in fragments.
        head = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
        chunks.append(chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
        args = TOOL_ARGUMENTS
        for i in range(0, len(args), 6):
            chunks.append(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + 6]}}]})
            )
    chunks.append(chunk({}, finish))
    if (req.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    events = [b"data: " + dumps(c) + b"\n\n" for c in chunks]
    return Reply(200, events=(*events, b"data: [DONE]\n\n"))


def embeddings(req: JSON) -> Reply:
    """``POST /v1/embeddings``; base64 is little-endian float32 like the real API."""
    raw = req.get("input", "")
    inputs: list[object] = [raw] if isinstance(raw, str) else list(raw)
    as_b64 = req.get("encoding_format") == "base64"
    data: list[JSON] = []
    for index, item in enumerate(inputs):
        vec = embedding_vector(item)
        encoded: object = base64.b64encode(struct.pack("<4f", *vec)).decode() if as_b64 else vec
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(word_count(i if isinstance(i, str) else json.dumps(i)) for i in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_reply(
        {"object": "list", "data": data, "model": req.get("model", MODELS[1]), "usage": usage}
    )


def multipart_field(body: bytes, content_type: str, name: str) -> bytes | None:
    """Raw bytes of one multipart/form-data field (parsed by hand to keep bytes exact)."""
    boundary = ""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return None
    for part in body.split(b"--" + boundary.encode()):
        head, sep, data = part.partition(b"\r\n\r\n")
        if sep and f'; name="{name}"'.encode() in head:
            return data[:-2] if data.endswith(b"\r\n") else data
    return None


def transcription(body: bytes, content_type: str) -> Reply:
    """``POST /v1/audio/transcriptions``: reports the uploaded file's size."""
    data = multipart_field(body, content_type, "file")
    if data is None:
        return error_reply(400, "missing multipart field 'file'", "invalid_request_error")
    return json_reply({"text": f"transcribed {len(data)} bytes"})


def models() -> Reply:
    """``GET /v1/models``."""
    data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "fake"} for m in MODELS]
    return json_reply({"object": "list", "data": data})


def anthropic_message(req: JSON, body: bytes) -> Reply:
    """``POST /v1/messages``, streamed with the real event sequence or not."""
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    text = "Echo: " + (content_text(messages[-1].get("content")) if messages else "")
    input_tokens = sum(word_count(content_text(m.get("content"))) for m in messages)
    output_tokens = word_count(text)
    message: JSON = {
        "id": "msg_" + body_hash(body)[:24],
        "type": "message",
        "role": "assistant",
        "model": req.get("model", MODELS[2]),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
    if not req.get("stream"):
        return json_reply(message)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events: list[JSON] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    for piece in split_pieces(text):
        events.append(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
        )
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]
    return Reply(
        200,
        events=tuple(f"event: {e['type']}\ndata: ".encode() + dumps(e) + b"\n\n" for e in events),
    )


def build_reply(method: str, path: str, content_type: str, body: bytes) -> Reply:
    """Route an already prefix-stripped, query-less request to its builder."""
    if method == "GET" and path == "/v1/models":
        return models()
    if method != "POST":
        return error_reply(404, f"no route for {method} {path}", "not_found_error")
    if path == "/v1/audio/transcriptions":
        return transcription(body, content_type)
    if path not in JSON_ROUTES:
        return error_reply(404, f"no route for {method} {path}", "not_found_error")
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        return error_reply(400, "request body is not valid JSON", "invalid_request_error")
    if not isinstance(req, dict):
        return error_reply(400, "request body must be a JSON object", "invalid_request_error")
    if path == "/v1/chat/completions":
        return chat_completion(req, body)
    if path == "/v1/embeddings":
        return embeddings(req)
    return anthropic_message(req, body)
