"""More deterministic replies for the fake provider: Gemini, Cohere v2, Mistral, OpenAI Responses.

Each builder mirrors its API's wire format: field names, the SSE framing (Gemini ends events
with CRLF CRLF, Cohere and the Responses API name each event), the terminator (``[DONE]`` for
Mistral and Cohere) and the content type.  Like ``fake_payloads``, every reply is a pure
function of the request bytes.

At the end: the variations the provider's prefixes ask for, as pure functions too: the n-th
answer to a repeated request (``numbered``) and the paced chat stream of ``/slow`` and
``/endless`` (``paced_chat_events``).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from fake_payloads import (
    CREATED,
    JSON,
    Reply,
    body_hash,
    build_reply,
    content_text,
    dumps,
    json_reply,
    split_pieces,
    word_count,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

SSE = "text/event-stream"
_GEMINI_PATH = re.compile(
    r"^/v1(?:beta|alpha)?/models/([^/:]+):(generateContent|streamGenerateContent)$"
)


def build_more_reply(method: str, path: str, content_type: str, body: bytes) -> Reply | None:
    """The reply for a route of this module, or ``None`` to leave the request to the others."""
    if path.startswith("/openai/v1/"):
        # Groq serves the OpenAI API under /openai.
        return build_reply(method, path.removeprefix("/openai"), content_type, body)
    if method != "POST":
        return None
    gemini = _GEMINI_PATH.match(path)
    if gemini is None and path not in ("/v2/chat", "/v1/responses", "/v1/chat/completions"):
        return None
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(req, dict):
        return None
    if gemini is not None:
        return gemini_content(req, body, gemini[1], stream=gemini[2] == "streamGenerateContent")
    if path == "/v2/chat":
        return cohere_chat(req, body)
    if path == "/v1/responses":
        return openai_response(req, body)
    if str(req.get("model", "")).startswith("mistral"):
        return mistral_chat(req, body)
    return None


def _sse(events: list[JSON], *, named: bool = False, newline: str = "\n") -> tuple[bytes, ...]:
    end = (newline * 2).encode()
    return tuple(
        (f"event: {e['type']}{newline}".encode() if named else b"") + b"data: " + dumps(e) + end
        for e in events
    )


# --- Gemini: POST /v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse ---


def gemini_content(req: JSON, body: bytes, model: str, *, stream: bool) -> Reply:
    """A ``GenerateContentResponse``, or a stream of them, one per piece of the answer."""
    contents = [c for c in req.get("contents") or [] if isinstance(c, dict)]
    prompt = " ".join(
        str(p.get("text", "")) if "text" in p else "[image]"
        for c in contents
        for p in c.get("parts") or []
        if isinstance(p, dict)
    )
    last = contents[-1].get("parts") if contents else []
    text = "Echo: " + " ".join(str(p.get("text", "[image]")) for p in last or [])
    prompt_tokens, answer_tokens = word_count(prompt), word_count(text)
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": answer_tokens,
        "totalTokenCount": prompt_tokens + answer_tokens,
    }
    base = {"modelVersion": model, "responseId": body_hash(body)[:22]}

    def response(piece: str, done: bool) -> JSON:
        candidate: JSON = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        if done:
            candidate["finishReason"] = "STOP"
        return {"candidates": [candidate], "usageMetadata": usage, **base}

    if not stream:
        return json_reply(response(text, True))
    pieces = split_pieces(text)
    events = [response(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]
    return Reply(200, events=_sse(events, newline="\r\n"), content_type=SSE)


# --- Cohere v2: POST /v2/chat, "stream": true for SSE with named events ---


def cohere_chat(req: JSON, body: bytes) -> Reply:
    """A v2 chat response, or its message-start ... message-end event stream."""
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    text = "Echo: " + (content_text(messages[-1].get("content")) if messages else "")
    prompt = sum(word_count(content_text(m.get("content"))) for m in messages)
    tokens = {"input_tokens": prompt, "output_tokens": word_count(text)}
    usage = {"billed_units": tokens, "tokens": tokens}
    ident = body_hash(body)[:32]
    if not req.get("stream"):
        message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
        return json_reply(
            {"id": ident, "message": message, "finish_reason": "COMPLETE", "usage": usage}
        )
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events: list[JSON] = [
        {"id": ident, "type": "message-start", "delta": {"message": start}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
    ]
    events += [
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
        for p in split_pieces(text)
    ]
    events += [
        {"type": "content-end", "index": 0},
        {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}},
    ]
    return Reply(200, events=(*_sse(events, named=True), b"data: [DONE]\n\n"), content_type=SSE)


# --- Mistral: POST /v1/chat/completions with a mistral-* model ---


def mistral_chat(req: JSON, body: bytes) -> Reply:
    """Mistral's chat completion: OpenAI-like, usage in the last chunk of a stream."""
    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    text = "Echo: " + (content_text(messages[-1].get("content")) if messages else "")
    prompt = sum(word_count(content_text(m.get("content"))) for m in messages)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": word_count(text),
        "total_tokens": prompt + word_count(text),
    }
    base: JSON = {"id": body_hash(body)[:32], "created": CREATED, "model": req.get("model")}
    if not req.get("stream"):
        message = {"role": "assistant", "content": text, "tool_calls": None, "prefix": False}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply(
            {**base, "object": "chat.completion", "usage": usage, "choices": [choice]}
        )
    deltas: list[JSON] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": p} for p in split_pieces(text)]
    chunks: list[JSON] = []
    for i, delta in enumerate(deltas):
        last = i == len(deltas) - 1
        choice = {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
        chunk: JSON = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        if last:
            chunk["usage"] = usage
        chunks.append(chunk)
    return Reply(200, events=(*_sse(chunks), b"data: [DONE]\n\n"), content_type=SSE)


# --- OpenAI Responses API: POST /v1/responses ---


def _responses_input_text(value: object) -> str:
    if isinstance(value, str):
        return value
    items = [i for i in value if isinstance(i, dict)] if isinstance(value, list) else []
    if not items:
        return ""
    content = items[-1].get("content")
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) if p.get("type") == "input_text" else "[image]"
            for p in content
            if isinstance(p, dict)
        )
    return content_text(content)


def openai_response(req: JSON, body: bytes) -> Reply:
    """A Response object, or the typed event stream that builds it."""
    digest = body_hash(body)
    text = "Echo: " + _responses_input_text(req.get("input"))
    prompt = word_count(_responses_input_text(req.get("input")))
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": word_count(text),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + word_count(text),
    }
    item_id = "msg_" + digest[:24]
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    response: JSON = {
        "id": "resp_" + digest[:24],
        "object": "response",
        "created_at": CREATED,
        "status": "completed",
        "model": req.get("model"),
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }
    if not req.get("stream"):
        return json_reply(response)
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[JSON] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": p, "logprobs": []}
        for p in split_pieces(text)
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response},
    ]
    numbered = [{**e, "sequence_number": n} for n, e in enumerate(events)]
    return Reply(200, events=_sse(numbered, named=True), content_type=SSE)


# --- Variations: /counter and /reverse number the answers, /slow and /endless pace a stream ---


def numbered(reply: Reply, n: int) -> Reply:
    """``reply`` as the n-th answer to a repeated request, so repeats are told apart.

    A chat completion's text gets `` (answer #n)`` (in a stream: its last text delta, so the
    joined deltas read like the plain reply); any other JSON object gets ``"answer": n``
    (in a stream: its first JSON event).  Other bodies are left as they are.
    """
    suffix = f" (answer #{n})"
    if reply.events is None:
        obj = _json_object(reply.body)
        if obj is None:
            return reply
        message = _first_choice(obj, "message")
        if isinstance(message.get("content"), str):
            message["content"] += suffix
        else:
            obj["answer"] = n
        return replace(reply, body=dumps(obj))
    events = list(reply.events)
    parsed = [_event_json(event) for event in events]
    for index in reversed(range(len(events))):
        delta = _first_choice(parsed[index] or {}, "delta")
        if isinstance(delta.get("content"), str) and delta["content"]:
            delta["content"] += suffix
            events[index] = _with_json(events[index], parsed[index] or {})
            return replace(reply, events=tuple(events))
    for index, obj in enumerate(parsed):
        if obj is not None:
            events[index] = _with_json(events[index], {**obj, "answer": n})
            break
    return replace(reply, events=tuple(events))


def paced_chat_events(
    req: JSON, body: bytes, total: int | None, suffix: str = ""
) -> Iterator[bytes]:
    """The SSE events of a streamed chat completion, for the provider to send one at a time.

    ``total`` events in all (at least 4): the role, ``Echo: <prompt>`` plus ``suffix``, then
    `` <k>`` as the text of the k-th event, the finish and ``[DONE]``.  With ``total`` None the
    text events never end, which is what ``/endless`` sends until the client hangs up.
    """
    base: JSON = {
        "id": "chatcmpl-" + body_hash(body)[:12],
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": req.get("model", "gpt-fake"),
    }

    def event(delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + dumps({**base, "choices": [choice]}) + b"\n\n"

    messages = [m for m in req.get("messages") or [] if isinstance(m, dict)]
    prompt = content_text(messages[-1].get("content")) if messages else ""
    yield event({"role": "assistant", "content": "", "refusal": None})
    yield event({"content": "Echo: " + prompt + suffix})
    numbers = itertools.count(3) if total is None else range(3, max(total, 4) - 1)
    for number in numbers:
        yield event({"content": f" {number}"})
    yield event({}, "stop")
    yield b"data: [DONE]\n\n"


def _json_object(raw: bytes) -> JSON | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _first_choice(obj: JSON, part: str) -> JSON:
    """``obj["choices"][0][part]`` when the reply has that shape, else an empty dict."""
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        found = choices[0].get(part)
        if isinstance(found, dict):
            return found
    return {}


def _event_json(event: bytes) -> JSON | None:
    """The JSON object on an SSE event's ``data:`` line, if it carries one."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            return _json_object(line[5:])
    return None


def _with_json(event: bytes, obj: JSON) -> bytes:
    """``event`` with its ``data:`` line replaced, keeping the line ending (Gemini's CRLF)."""
    lines = event.split(b"\n")
    for index, line in enumerate(lines):
        if line.startswith(b"data:"):
            lines[index] = b"data: " + dumps(obj) + (b"\r" if line.endswith(b"\r") else b"")
            break
    return b"\n".join(lines)
