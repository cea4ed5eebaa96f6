"""More deterministic replies for the fake provider: Gemini, Cohere v2, Mistral, OpenAI Responses.

Each builder mirrors its API's wire format: field names, the SSE framing (Gemini ends events
with CRLF CRLF, Cohere and the Responses API name each event), the terminator (``[DONE]`` for
Mistral and Cohere) and the content type.  Like ``fake_payloads``, every reply is a pure
function of the request bytes.
"""

from __future__ import annotations

import json
import re

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
