"""One cassette entry as a person reads it: request, response, and a stream event by event."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._entry import Entry
from ._secrets import (
    REDACTED,
    is_secret_header,
    is_secret_request_header,
    mask_secrets,
    redact_url,
)

__all__ = ["format_age", "format_size", "render_entry"]

_MAX_STRING = 200
_MAX_EVENT = 100
_MAX_TEXT_LINES = 40
_SHORT_LIST = 120  # a list of plain values this short (as JSON) stays on one line


def render_entry(entry: Entry, title: str, now: datetime) -> str:
    """The text ``llm-cache show`` prints for one entry: as the file holds it, except that
    a credential a hand edit let in is not printed (URLs redacted, key shapes masked)."""
    request, response = entry.request, entry.response
    age = (now - entry.recorded_datetime()).total_seconds()
    recorded = f"{entry.recorded_at} ({format_age(age)} ago)"
    if entry.ttl is not None:
        recorded += f", ttl {entry.ttl:g}s" + (", expired" if entry.is_expired(now) else "")
    lines = [
        title,
        f"  key:       {entry.key}",
        f"  recorded:  {recorded}",
        f"  duration:  {entry.duration:g}s",
        f"  request:   {request.get('method', '?')} {redact_url(str(request.get('url', '?')))}",
    ]
    lines += _headers(request.get("headers"), is_secret_request_header)
    lines += _body(request.get("body"), "  body:")
    lines.append(f"  response:  {response.get('status', '?')}")
    lines += _headers(response.get("headers"), is_secret_header)
    lines += _body(response.get("body"), "  body:")
    return mask_secrets("\n".join(lines)) + "\n"


def _headers(headers: object, is_secret: Callable[[str], bool]) -> list[str]:
    if not isinstance(headers, dict) or not headers:
        return []
    return [
        "  headers:",
        *(
            f"    {name}: {REDACTED if is_secret(str(name).lower()) else value}"
            for name, value in headers.items()
        ),
    ]


def _body(body: object, label: str) -> list[str]:
    if not isinstance(body, dict) or not body:
        return [f"{label} (empty)"]
    if "chunks" in body:
        return _stream(body["chunks"], label)
    if "json" in body:
        return [label, *_indent(_pretty(body["json"], "").splitlines())]
    if "text" in body:
        text_lines = str(body["text"]).splitlines() or [""]
        shown = _indent(text_lines[:_MAX_TEXT_LINES])
        if len(text_lines) > _MAX_TEXT_LINES:
            shown.append(f"    ... {len(text_lines) - _MAX_TEXT_LINES} more lines")
        return [label, *shown]
    if "base64" in body:
        return [f"{label} binary, {_binary_size(body['base64'])} bytes (base64 in the file)"]
    return [f"{label} {_cut(json.dumps(body, ensure_ascii=False), _MAX_STRING)}"]


def _stream(chunks: object, label: str) -> list[str]:
    items = chunks if isinstance(chunks, list) else []
    events: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "sse" in item:
            for event in item["sse"] or []:
                events.append(_sse_event(event))
        elif "event" in item:
            events.append(_aws_event(item["event"]))
        elif "text" in item:
            events.append(f"text     {_cut(_compact(item['text']))}")
        elif "base64" in item:
            events.append(f"binary   {_binary_size(item['base64'])} bytes")
    width = len(str(len(events)))
    lines = [f"{label} stream of {len(events)} events in {len(items)} chunks"]
    lines += [f"    {n:>{width}}. {text}" for n, text in enumerate(events, 1)]
    return lines


def _sse_event(event: object) -> str:
    if not isinstance(event, dict):
        return _cut(str(event))
    data = event.get("data")
    name = event.get("event")
    if name is None and isinstance(data, dict) and isinstance(data.get("type"), str):
        name = data["type"]  # Anthropic and Responses API events name themselves
    name = str(name or "message")
    if "data" in event:
        delta = _delta(data)
        if delta is not None:
            shown = _delta_text(delta)
        else:
            shown = data if isinstance(data, str) else _compact(data)
    else:
        shown = " ".join(f"{k}: {v}" for k, v in event.items() if k != "event")
    return f"{name:<8} {_cut(shown)}"


def _delta(data: object) -> object:
    """The incremental part of a chat stream event (OpenAI ``choices[0].delta``, Anthropic
    ``delta``), the one thing that changes from event to event."""
    if not isinstance(data, dict):
        return None
    if "delta" in data:
        return data["delta"]
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0].get("delta")
    return None


def _delta_text(delta: object) -> str:
    """What a delta adds: its text, its tool-call fragment, or (else) the delta itself."""
    if isinstance(delta, str):
        return f"text {_compact(delta)}"  # Responses API: the delta is the text
    if isinstance(delta, dict):
        for name in ("content", "text", "thinking"):
            if isinstance(delta.get(name), str) and delta[name]:
                return f"text {_compact(delta[name])}"
        if isinstance(delta.get("partial_json"), str):  # Anthropic tool input
            return f"tool input {_compact(delta['partial_json'])}"
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls and isinstance(calls[0], dict):
            parts = []
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    called = function.get("name")
                    fragment = function.get("arguments") or ""
                    head = f"[{call.get('index', 0)}]" + (f" {called}" if called else "")
                    parts.append(f"{head} {_compact(fragment)}" if fragment else head)
            return "tool call " + "; ".join(parts)
    return "delta " + _compact(delta)


def _aws_event(event: object) -> str:
    """An AWS event-stream message: its event type and its payload."""
    if not isinstance(event, dict):
        return _cut(str(event))
    headers = str(event.get("headers") or "")
    kind = next(
        (line.split(": ", 1)[1] for line in headers.splitlines() if line.startswith(":event-type")),
        "event",
    )
    if "json" in event:
        shown = _compact(event["json"])
    elif "text" in event:
        shown = _compact(event["text"])
    elif "base64" in event:
        shown = f"binary {_binary_size(event['base64'])} bytes"
    else:
        shown = ""
    return f"{kind:<8} {_cut(shown)}"


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _pretty(value: Any, pad: str) -> str:
    """Indented JSON, except that short lists of plain values stay on one line."""
    inner = pad + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        if any(isinstance(v, dict | list) for v in value):
            return "[\n" + ",\n".join(inner + _pretty(v, inner) for v in value) + f"\n{pad}]"
        flat = json.dumps(value, ensure_ascii=False)
        if len(flat) > _SHORT_LIST:
            return f"{flat[: _SHORT_LIST - 4]} ...] ({len(value)} items)"
        return flat
    text = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and len(text) > _MAX_STRING:
        return f'{text[: _MAX_STRING - 4]}..." ({len(value)} chars)'
    return text


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def _cut(text: str, limit: int = _MAX_EVENT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _binary_size(encoded: object) -> int:
    try:
        return len(base64.b64decode(str(encoded)))
    except ValueError:
        return 0


def format_age(seconds: float) -> str:
    """``42s``, ``15m``, ``5h``, ``12d``: the largest unit that keeps it short."""
    for unit, size, limit in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{max(0, int(seconds // size))}{unit}"
    return f"{int(seconds // 86400)}d"


def format_size(size: int) -> str:
    """Bytes as ``812 B``, ``4.1 KB`` or ``2.3 MB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
