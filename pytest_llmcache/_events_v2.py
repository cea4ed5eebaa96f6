"""An AWS event stream as a version 2 cassette shows it: ``response_events``, one item a message.

Each item holds the message's headers as ``name: value`` lines and its payload: ``json``
(indented JSON text, with ``json_style`` when the bytes were not compact JSON), ``text`` or
``base64``::

    response_events:
    - headers: |
        :event-type: contentBlockDelta
        :content-type: application/json
        :message-type: event
      json: |
        {
          "contentBlockIndex": 0,
          "delta": {
            "text": "Hi"
          }
        }

Replay frames each item again, with its CRCs, as one chunk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from . import _body
from ._entry import CassetteError

__all__ = ["read", "render"]

_INDENT = _body.json_style("indent")
_FIELDS = frozenset({"headers", "json", "json_style", "text", "base64"})
_PAYLOADS = ("json", "text", "base64")


def render(items: Sequence[dict[str, Any]]) -> list[dict[str, str]] | None:
    """The stored chunks as the file's items, or ``None`` unless each chunk is one message."""
    if not items or not all("event" in item for item in items):
        return None
    events = []
    for item in items:
        stored = item["event"]
        event = {"headers": stored["headers"]} if stored.get("headers") else {}
        if "json" in stored:
            event["json"] = _INDENT(stored["json"]) + "\n"
            if "style" in stored:
                event["json_style"] = stored["style"]
        elif "text" in stored or "base64" in stored:
            kind = "text" if "text" in stored else "base64"
            event[kind] = stored[kind]
        events.append(event)
    return events


def read(items: object, where: str, place: Callable[[int], str]) -> list[dict[str, Any]]:
    """The file's items as stored messages (:func:`._body.decode_event` frames each one).

    A message that cannot be framed (a bad header line, a value out of range, a payload that
    is not valid base64 or JSON) is refused, named by ``place(number)``; ``where`` names the
    list itself.
    """
    if not isinstance(items, list):
        raise CassetteError(f"{where} must be a list")
    events = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise CassetteError(f"{place(number)} must be a mapping of headers and a payload")
        unknown = set(map(str, item)) - _FIELDS
        payloads = [name for name in _PAYLOADS if name in item]
        if unknown or len(payloads) > 1 or ("json_style" in item and payloads != ["json"]):
            raise CassetteError(
                f"{place(number)}: holds {', '.join(map(str, item))}; expected headers and one "
                "of json (with json_style), text, base64"
            )
        if not all(isinstance(value, str) for value in item.values()):
            raise CassetteError(f"{place(number)}: headers and payload must be text")
        event: dict[str, Any] = {"headers": item.get("headers", "")}
        if "json" in item:
            try:
                event["json"] = json.loads(item["json"])
            except RecursionError:
                raise CassetteError(f"{place(number)}: json is nested too deeply") from None
            except ValueError as exc:
                raise CassetteError(f"{place(number)}: json is not valid JSON: {exc}") from None
            if "json_style" in item:
                event["style"] = item["json_style"]
        elif payloads:
            event[payloads[0]] = item[payloads[0]]
        problem = _body.event_problem(event)
        if problem is not None:
            raise CassetteError(f"{place(number)}: {problem}")
        events.append(event)
    return events
