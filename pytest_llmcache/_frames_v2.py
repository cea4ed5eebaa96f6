"""A WebSocket session as a version 2 cassette shows it: ``response_frames``, one item a message.

Each item names who sent the message and holds its text, its bytes as base64 (binary messages,
audio included, are never decoded), or a close frame's code and reason::

    response_frames:
    - from: server
      text: '{"type":"session.created","session":{"id":"sess_1"}}'
    - from: client
      text: '{"type":"response.create"}'
    - from: client
      base64: AAEC/w==
    - from: client
      close: 1000
      reason: ''

Each item is one stored chunk, the compact JSON of the same mapping, so replay gets the exact
chunks back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["read", "render"]

_PAYLOADS = ("text", "base64", "close")
_SIDES = ("client", "server")


def _chunk(item: dict[str, Any]) -> bytes:
    """The stored chunk of a frame item, its fields in their fixed order."""
    ordered = {name: item[name] for name in ("from", *_PAYLOADS, "reason") if name in item}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def _problem(item: object) -> str | None:
    """Why an item is not a frame, or ``None``."""
    if not isinstance(item, dict):
        return "must be a mapping of from and one of text, base64, close"
    payloads = [name for name in _PAYLOADS if name in item]
    unknown = set(map(str, item)) - {"from", "reason", *_PAYLOADS}
    if unknown or len(payloads) != 1 or ("reason" in item and payloads != ["close"]):
        return f"holds {', '.join(map(str, item))}; expected from and one of text, base64, close"
    if item.get("from") not in _SIDES:
        return f"from must be client or server, got {item.get('from')!r}"
    kind = payloads[0]
    value = item[kind]
    if kind == "close":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"close must be a close code, got {value!r}"
        if not isinstance(item.get("reason", ""), str):
            return "reason must be text"
        return None
    if not isinstance(value, str):
        return f"{kind} must be text"
    if kind == "base64":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "base64 is not valid base64"
    return None


def render(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The stored chunks as the file's items, or ``None`` unless each chunk is one frame."""
    if not items:
        return None
    frames = []
    for stored in items:
        text = stored.get("text")
        if set(stored) != {"text"} or not isinstance(text, str) or text[:9] != '{"from":"':
            return None
        try:
            item = json.loads(text)
        except ValueError:
            return None
        if _problem(item) is not None or _chunk(item) != text.encode():
            return None
        frames.append(item)
    return frames


def read(items: object, where: str, place: Callable[[int], str]) -> list[bytes]:
    """The file's items as the stored chunks; a malformed item is refused, named by
    ``place(number)``, and ``where`` names the list itself."""
    if not isinstance(items, list):
        raise _error(f"{where} must be a list")
    chunks = []
    for number, item in enumerate(items, 1):
        problem = _problem(item)
        if problem is not None:
            raise _error(f"{place(number)}: {problem}")
        chunks.append(_chunk(item))
    return chunks


def _error(message: str) -> Exception:
    from ._entry import CassetteError

    return CassetteError(message)
