"""Tokens a stored response used, read from its ``usage`` the way each provider reports it."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from ._exchange import Response

__all__ = ["Usage", "entry_usage", "price_of", "replay_usage"]


class Usage(NamedTuple):
    """Input and output tokens of one call, and the model that served it.

    A named tuple: every replayed call makes one, in half the time of a frozen dataclass.
    """

    model: str
    input_tokens: int = 0
    output_tokens: int = 0


# Field names per provider: OpenAI chat and embeddings, OpenAI Responses and Anthropic,
# Gemini's usageMetadata, Cohere v2's usage.tokens, Bedrock's Converse (and the metadata
# event of its stream).
_INPUT = ("prompt_tokens", "input_tokens", "promptTokenCount", "inputTokens")
_OUTPUT = ("completion_tokens", "output_tokens", "candidatesTokenCount", "outputTokens")
# '"usage"' as it shows in base64 after 0, 1 or 2 other bytes: the characters whose six bits
# all fall inside it. Bedrock's InvokeModelWithResponseStream wraps each model event as base64
# in {"bytes": ...}, so a replay finds the events that hold a usage without decoding them all.
_USAGE_B64 = tuple(
    base64.b64encode(b"\0" * shift + b'"usage"')[(8 * shift + 5) // 6 : (8 * shift + 50) // 6 + 1]
    for shift in range(3)
)


@functools.cache
def _usage_object() -> re.Pattern[bytes]:
    """A usage object, as JSON writes it: a stream event that holds one is parsed. (Compiled
    by the first stream: a whole answer's usage is read from its parsed JSON.)"""
    return re.compile(rb'"usage(?:Metadata)?"\s*:\s*\{')


def entry_usage(request: Mapping[str, Any], response: Mapping[str, Any]) -> Usage:
    """The usage a stored exchange reports (zeros when it reports none)."""
    body = response.get("body") or {}
    documents: list[object] = []
    if "json" in body:
        documents.append(body["json"])
    for chunk in body.get("chunks") or ():
        for event in chunk.get("sse") or ():
            documents.append(event.get("data"))
        event = chunk.get("event")
        if isinstance(event, Mapping):
            documents.append(_unwrapped(event.get("json")))
        text = chunk.get("text")
        if isinstance(text, str) and text.startswith('{"from":"server"') and "usage" in text:
            documents.append(_unwrapped(_json(text.encode())))
    return _usage(request, documents)


def replay_usage(
    request: Mapping[str, Any] | Callable[[], Mapping[str, Any]], response: Response
) -> Usage:
    """:func:`entry_usage` read from the bytes replayed, as fast as a replay needs it.

    Only the documents that can hold a usage (or name the model) are parsed: a stream of
    200 events has its usage in one or two of them. ``request`` may be given as a function,
    called only if the response does not name its model.
    """
    document = response.document
    if document is not None:
        usage = _plain_usage(document)
        return usage if usage is not None else _usage(request, [_unwrapped(document)])
    chunks = response.chunks
    if not any(map(bytes.startswith, chunks, repeat(_NOT_TEXT))):
        body = b"".join(chunks)
        if b"\r" not in body:  # (a line may end at a lone CR: then chunk by chunk, below)
            return _usage(request, _event_documents(body))
    documents: list[object] = []
    model_seen = False
    for chunk in chunks:
        if chunk[:1] == b"\0" and _frames().starts_frame(chunk):
            # An AWS event-stream message (under 16 MB, so its length starts with a zero byte):
            # its JSON payload, its usage maybe base64-wrapped.
            if b"usage" in chunk or any(needle in chunk for needle in _USAGE_B64):
                for message in _frames().decode(chunk) or ():
                    documents.append(_unwrapped(_json(message.payload)))
            continue
        if chunk[:1] in (b"{", b"["):
            if b"usage" in chunk or b"model" in chunk:
                documents.append(_unwrapped(_json(chunk)))
            continue
        # OpenAI's stream repeats "usage": null in every event when usage is asked for.
        wanted = (b"usage" in chunk and _usage_object().search(chunk) is not None) or (
            not model_seen and b'"model"' in chunk
        )
        if not wanted:
            continue
        for line in chunk.splitlines():
            if line.startswith(b"data:") and line[5:].strip()[:1] == b"{":
                document = _json(line[5:])
                model_seen = model_seen or (isinstance(document, dict) and "model" in document)
                documents.append(document)
    return _usage(request, documents)


# First bytes of a chunk that is no text event stream: an AWS event-stream message, JSON.
_NOT_TEXT = (b"\0", b"{", b"[")


def _event_documents(body: bytes) -> list[object]:
    """The documents of a text event stream that can name the model or hold a usage: the
    events up to the first that names its model, and every one that holds a usage object.

    The whole body is searched at once (a search per chunk costs more than the chunk's
    share of one over all): a stream of 200 events has its usage in one or two of them.
    """
    documents: list[object] = []
    seen: set[int] = set()
    at = body.find(b'"model"')
    while at >= 0:
        end, document = _line_document(body, at, seen)
        if document is not _NO_DOCUMENT:
            documents.append(document)
            if isinstance(document, dict) and "model" in document:
                break
        at = body.find(b'"model"', end)
    usage_object = _usage_object()
    at = body.find(b'"usage')
    while at >= 0:
        if usage_object.match(body, at) is not None:
            end, document = _line_document(body, at, seen)
            if document is not _NO_DOCUMENT:
                documents.append(document)
        else:
            end = at + 6
        at = body.find(b'"usage', end)
    return documents


_NO_DOCUMENT: Any = object()


def _line_document(body: bytes, at: int, seen: set[int]) -> tuple[int, object]:
    """The line around ``at``: where it ends, and its ``data:`` JSON document
    (``_NO_DOCUMENT``: none, or that line was read already)."""
    start = body.rfind(b"\n", 0, at) + 1
    end = body.find(b"\n", at)
    if end < 0:
        end = len(body)
    if start in seen:
        return end, _NO_DOCUMENT
    seen.add(start)
    line = body[start:end]
    if line.startswith(b"data:") and line[5:].strip()[:1] == b"{":
        return end, _json(line[5:])
    return end, _NO_DOCUMENT


# Keys that make a document more than a plain answer with its model and usage: what
# _unwrapped decodes, and the containers and usage blocks _usage_blocks looks into.
_NOT_PLAIN = frozenset({"from", "bytes", "message", "response", "usageMetadata"})


def _plain_usage(document: object) -> Usage | None:
    """The usage of ``{"model": ..., "usage": {...}, ...}`` (most whole answers) read directly,
    the same as :func:`_usage` reads it; ``None`` for any other document."""
    if type(document) is not dict or not _NOT_PLAIN.isdisjoint(document):
        return None
    model = document.get("model")
    usage = document.get("usage")
    if type(model) is not str or type(usage) is not dict or "tokens" in usage:
        return None
    input_tokens = usage.get("prompt_tokens")
    if input_tokens is None:
        input_tokens = usage.get("input_tokens")
    output_tokens = usage.get("completion_tokens")
    if output_tokens is None:
        output_tokens = usage.get("output_tokens")
    if type(input_tokens) is not int or type(output_tokens) is not int:
        return None
    return Usage(model, max(input_tokens, 0), max(output_tokens, 0))


def _frames() -> Any:
    """The AWS event-stream codec, loaded by the first stream that starts like a frame."""
    from . import _eventstream

    return _eventstream


def _unwrapped(document: object) -> object:
    """A Bedrock stream event's model event, decoded from its ``bytes``; a WebSocket server
    message (Realtime's ``response.done``), decoded from its text; others as they are."""
    if isinstance(document, Mapping) and document.get("from") == "server":
        text = document.get("text")
        return _json(text.encode()) if isinstance(text, str) else None
    if isinstance(document, Mapping) and isinstance(document.get("bytes"), str):
        try:
            return _json(base64.b64decode(document["bytes"], validate=True))
        except binascii.Error:
            return document
    return document


def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _usage(
    request: Mapping[str, Any] | Callable[[], Mapping[str, Any]], documents: list[object]
) -> Usage:
    model = _model(request, documents)
    input_tokens = output_tokens = 0
    for document in documents:
        for usage in _usage_blocks(document):
            # Streams repeat cumulative counts (Anthropic's message_delta, usage chunks).
            input_tokens = max(input_tokens, _first_int(usage, _INPUT))
            output_tokens = max(output_tokens, _first_int(usage, _OUTPUT))
    return Usage(model, input_tokens, output_tokens)


def _usage_blocks(document: object) -> Iterable[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return
    for container in (document, document.get("message"), document.get("response")):
        if isinstance(container, Mapping):
            for name in ("usage", "usageMetadata"):
                usage = container.get(name)
                if isinstance(usage, Mapping):
                    tokens = usage.get("tokens")
                    yield tokens if isinstance(tokens, Mapping) else usage


def _first_int(usage: Mapping[str, Any], names: tuple[str, ...]) -> int:
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _model(
    request: Mapping[str, Any] | Callable[[], Mapping[str, Any]], documents: list[object]
) -> str:
    for document in documents:
        if isinstance(document, Mapping):
            for container in (document, document.get("message"), document.get("response")):
                if isinstance(container, Mapping) and isinstance(container.get("model"), str):
                    return str(container["model"])
    if callable(request):
        request = request()
    request_body = (request.get("body") or {}).get("json")
    if isinstance(request_body, Mapping) and isinstance(request_body.get("model"), str):
        return str(request_body["model"])
    # Bedrock names the model in the path: /model/{id}/converse, /model/{id}/invoke, ...
    parts = urlsplit(str(request.get("url") or "")).path.split("/")
    if len(parts) == 4 and parts[1] == "model" and parts[2]:
        return unquote(parts[2])
    # The Realtime API names it in the WebSocket URL: /v1/realtime?model=...
    models = parse_qs(urlsplit(str(request.get("url") or "")).query).get("model")
    return models[0] if models else ""


def price_of(usage: Usage, prices: Iterable[tuple[str, float, float]]) -> float | None:
    """Dollars for ``usage``, priced by the longest model name that prefixes its model."""
    matches = [p for p in prices if usage.model.startswith(p[0])]
    if not matches:
        return None
    _, price_in, price_out = max(matches, key=lambda p: len(p[0]))
    return (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1_000_000
