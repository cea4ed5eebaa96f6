"""What re-recording changed: a new recording compared with the one it replaces.

Each re-recorded entry falls into one class, from least to most worrying:

* ``new``: nothing was recorded for this call before;
* ``unchanged``: the same answer, byte for byte where it matters;
* ``volatile``: only what differs on every call changed: ids, ``created``, fingerprints,
  token usage, response headers (``x-request-id``, dates, rate limits; all but the content
  type, which is the body's form);
* ``answer``: the answer changed: message text, tool calls and their arguments, the finish
  reason, or any other value the provider sent;
* ``shape``: the status, the content type, the keys of the JSON, or the stream's event
  types changed: code that reads the response may break, not only its assertions.

A stream is compared as what a client assembles from it (the deltas' text joined, the last
value of every other field, the event types in the order they first appear), so the same
answer cut into other chunks is the same answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ._diff import pair, show
from ._entry import Entry
from ._secrets import redact_url

__all__ = ["CHANGED", "KINDS", "LABELS", "Drift", "classify"]

KINDS = ("new", "unchanged", "volatile", "answer", "shape")
"""The classes, from least to most worrying."""
CHANGED = frozenset({"answer", "shape"})
"""The classes that mean behaviour changed (what ``--llm-cache-fail-on-drift`` fails on)."""
LABELS = {
    "new": "new",
    "unchanged": "unchanged",
    "volatile": "volatile only",
    "answer": "answer changed",
    "shape": "shape changed",
}
"""How each class is named in reports."""

_SHOWN = 2  # differences written out on the one line; the rest are counted

# Fields whose value is new on every call, whatever the answer: leaf names, compared exactly
# or by suffix (``item_id``, ``responseId``).
_VOLATILE_NAMES = frozenset(
    {
        "id",
        "created",
        "created_at",
        "createtime",
        "system_fingerprint",
        "obfuscation",
        "sequence_number",
        "timestamp",
        "date",
    }
)
# Token counts follow the text: when the text is the same they vary with the provider's
# accounting, so they are volatile; when the text changed, the text is what is reported.
_USAGE = frozenset({"usage", "usagemetadata", "usage_metadata", "billed_units"})
# In a stream, these string fields arrive in pieces that are joined (OpenAI's and Anthropic's
# deltas, Gemini's parts, tool arguments in fragments).
_PIECES = frozenset({"content", "text", "arguments", "partial_json", "thinking", "refusal", "data"})
_STREAM_JSON_LINES = ("application/x-ndjson", "application/jsonl")
_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Drift:
    """The class of one re-recorded entry and a one-line diff of what changed."""

    kind: str
    """One of :data:`KINDS`."""
    line: str = ""
    """What changed, e.g. ``choices[0].message.content: "Hi" -> "Hello"`` (may be empty)."""


def classify(old: Entry | None, new: Entry) -> Drift:
    """Compare ``new`` with the ``old`` entry it replaces (``None``: there was none)."""
    if old is None:
        request = new.request
        return Drift("new", f"{request.get('method', '?')} {redact_url(str(request.get('url')))}")
    before, after = _View.of(old), _View.of(new)
    shape = before.shape_changes(after)
    if shape:
        return Drift("shape", _one_line(shape))
    answer: list[str] = []
    volatile: list[str] = []
    for path in sorted(set(before.values) | set(after.values), key=_natural):
        was, now = before.values.get(path, _ABSENT), after.values.get(path, _ABSENT)
        if was == now and type(was) is type(now):
            continue
        if _is_volatile(path):
            volatile.append(_INDEX.sub("", path))
        else:
            answer.append(f"{path}: {_pair(was, now)}")
    if answer:
        return Drift("answer", _one_line(answer))
    for name in sorted(set(before.headers) | set(after.headers)):
        if before.headers.get(name) != after.headers.get(name):
            volatile.append(f"headers.{name}")
    if volatile:
        return Drift("volatile", "only " + ", ".join(dict.fromkeys(volatile)))
    return Drift("unchanged")


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT: Any = _Absent()


@dataclass
class _View:
    """A response as a reader of it sees it: what is compared."""

    status: int
    media: str
    body: str
    """``json``, ``stream``, ``text``, ``bytes`` or ``empty``."""
    headers: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    """Leaf values by path (``choices[0].message.content``); a stream's pieces joined."""
    keys: set[str] = field(default_factory=set)
    """Paths of the JSON objects' keys, without list positions: the JSON's shape."""
    events: list[str] = field(default_factory=list)
    """A stream's event types, in the order they first appear."""

    @classmethod
    def of(cls, entry: Entry) -> _View:
        stored = entry.response
        headers = {str(k).lower(): str(v) for k, v in (stored.get("headers") or {}).items()}
        media = headers.pop("content-type", "").split(";")[0].strip().lower()
        raw = b"".join(entry.to_response().chunks)
        view = cls(int(stored.get("status", 0)), media, "empty", headers)
        text = _utf8(raw)
        if not raw:
            pass
        elif text is None:
            view.body = "bytes"
            digest = hashlib.sha256(raw).hexdigest()[:12]
            view.values["body"] = f"{len(raw)} bytes, sha256 {digest}"
        elif media == "text/event-stream":
            view.body = "stream"
            for kind, data in _sse_events(text):
                view.add_event(kind, data)
        elif media in _STREAM_JSON_LINES:
            view.body = "stream"
            for line in text.splitlines():
                if line.strip():
                    data = _json(line)
                    view.add_event(_event_type(None, data), data)
        elif (data := _json(text)) is not _ABSENT:
            view.body = "json"
            view.add(data, "", "", joined=False)
        else:
            view.body = "text"
            view.values["body"] = text
        return view

    def add_event(self, kind: str, data: Any) -> None:
        if kind not in self.events:
            self.events.append(kind)
        if data is not _ABSENT:
            self.add(data, "", "", joined=True)

    def add(self, value: Any, path: str, shape: str, *, joined: bool) -> None:
        """Flatten ``value`` into leaves; in a stream (``joined``), pieces of text add up."""
        if isinstance(value, dict) and value:
            for key, child in value.items():
                name = f"{path}.{key}" if path else str(key)
                keyed = f"{shape}.{key}" if shape else str(key)
                if not _volatile_name(str(key)):
                    self.keys.add(keyed)
                self.add(child, name, keyed, joined=joined)
        elif isinstance(value, list) and value:
            for index, child in enumerate(value):
                self.add(child, f"{path}[{index}]", f"{shape}[]", joined=joined)
        else:
            path = path or "body"
            was = self.values.get(path, _ABSENT)
            if joined and isinstance(was, str) and isinstance(value, str) and _piece(path):
                self.values[path] = was + value
            elif value is None and was is not _ABSENT:
                pass  # a later event leaving a field null does not undo what came before
            else:
                self.values[path] = value

    def shape_changes(self, other: _View) -> list[str]:
        """What differs in form between this view and ``other``, one item each."""
        changes: list[str] = []
        if self.status != other.status:
            changes.append(f"status: {self.status} -> {other.status}")
        if self.media != other.media:
            changes.append(f"content-type: {self.media or 'none'} -> {other.media or 'none'}")
        if self.body != other.body:
            # A JSON answer that became a stream (or text): its keys are not comparable.
            return [*changes, f"body: {self.body} -> {other.body}"]
        if self.events != other.events:
            added = [e for e in other.events if e not in self.events]
            removed = [e for e in self.events if e not in other.events]
            if added or removed:
                changes.append("event types" + _added_removed(added, removed))
            else:
                changes.append(f"event order: {', '.join(other.events)}")
        added = sorted(other.keys - self.keys, key=_natural)
        removed = sorted(self.keys - other.keys, key=_natural)
        if added or removed:
            changes.append("keys" + _added_removed(_outermost(added), _outermost(removed)))
        return changes


def _added_removed(added: list[str], removed: list[str]) -> str:
    parts = []
    if added:
        parts.append(f"added {', '.join(added)}")
    if removed:
        parts.append(f"removed {', '.join(removed)}")
    return ": " + "; ".join(parts)


def _outermost(paths: list[str]) -> list[str]:
    """``usage`` stands for ``usage.total_tokens`` and the rest under it."""
    kept: list[str] = []
    for path in paths:
        if not any(path.startswith(k + ".") or path.startswith(k + "[]") for k in kept):
            kept.append(path)
    return kept


def _sse_events(text: str) -> Iterator[tuple[str, Any]]:
    """Each event of an event stream: its type and its data (parsed JSON when it is JSON)."""
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field_name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field_name == "event":
                name = value
            elif field_name == "data":
                data.append(value)
        if name is None and not data:
            continue  # a comment, a keep-alive or the blank end
        joined = "\n".join(data)
        if joined.strip() == "[DONE]":
            yield "[DONE]", _ABSENT
            continue
        parsed = _json(joined)
        if parsed is _ABSENT:
            yield name or "data", {"data": joined} if joined else _ABSENT
        else:
            yield _event_type(name, parsed), parsed


def _event_type(name: str | None, data: Any) -> str:
    if name:
        return name
    if isinstance(data, dict):
        for key in ("type", "object"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return "data"


def _json(text: str) -> Any:
    if text.lstrip()[:1] not in ("{", "["):
        return _ABSENT
    try:
        return json.loads(text)
    except ValueError:
        return _ABSENT


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _volatile_name(name: str) -> bool:
    return name.lower() in _VOLATILE_NAMES or name.endswith(("_id", "Id"))


def _is_volatile(path: str) -> bool:
    segments = _INDEX.sub("", path).split(".")
    return _volatile_name(segments[-1]) or any(s.lower() in _USAGE for s in segments)


def _piece(path: str) -> bool:
    segments = _INDEX.sub("", path).split(".")
    return segments[-1] in _PIECES or "delta" in segments


def _natural(path: str) -> tuple[object, ...]:
    """Sort ``choices[10]`` after ``choices[2]``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path))


def _one_line(items: list[str]) -> str:
    line = "; ".join(items[:_SHOWN])
    if len(items) > _SHOWN:
        line += f" (+{len(items) - _SHOWN} more)"
    return line


def _pair(old: Any, new: Any) -> str:
    if old is _ABSENT:
        return f"added {show(new)}"
    if new is _ABSENT:
        return f"removed (was {show(old)})"
    return pair(old, new)
