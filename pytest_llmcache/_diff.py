"""Why a call missed: the nearest recorded request and how it differs (SPEC §4).

A miss usually means one field of the request changed (a prompt, a temperature, a beta
header). The nearest recorded request is one with the same method and URL, or else one for
the same ``model``; the diff compares the canonical bodies (what the key is computed from)
field by field, so it names exactly what to look at. Like every message, it shows no secret:
credential fields and headers are left out as the key leaves them out, URLs are redacted and
key-shaped values masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from . import _body
from ._cassette import Cassette, Entry
from ._exchange import Request
from ._key import KEY_HEADERS, canonical_body, canonical_url, media_type
from ._secrets import (
    credentials,
    is_secret_request_header,
    mask_secrets,
    redact_url,
    scrub,
    stored_url,
)

__all__ = [
    "Nearest",
    "diff_requests",
    "find_nearest",
    "nearest_message",
    "pair",
    "show",
    "stored_request",
]

MAX_VALUE = 60
"""Values longer than this many characters are cut, with an ellipsis."""
MAX_LINES = 12
"""Diff lines shown before the rest are counted as "... N more"."""
_ELLIPSIS = "..."
_CONTEXT = 12  # characters kept before the first difference of two long strings
_MISSING = object()


@dataclass(frozen=True)
class Nearest:
    """The recorded entry most like a missed request, and what differs."""

    entry: Entry
    number: int
    """1-based position of the entry in its cassette."""
    differences: list[str]


def stored_request(entry: Entry) -> Request:
    """The request of a recorded entry, as the key saw it (headers that matter, body bytes)."""
    data = entry.request
    headers = data.get("headers") or {}
    if not isinstance(headers, dict):
        headers = {}
    body = data.get("body") or {}
    try:
        raw = _body.decode_body(body) if isinstance(body, dict) else b""
    except (KeyError, TypeError, ValueError):
        raw = b""  # a hand-edited body must not hide the miss message behind a traceback
    return Request(
        method=str(data.get("method", "")).upper(),
        url=str(data.get("url", "")),
        headers=tuple((str(k).lower(), str(v)) for k, v in headers.items()),
        body=raw,
    )


def find_nearest(
    request: Request,
    cassette: Iterable[Entry],
    *,
    ignore_fields: Sequence[str] = (),
    match_headers: Sequence[str] = (),
) -> Nearest | None:
    """The closest recorded request: same method and URL, else same model; fewest differences."""
    url = canonical_url(request.url)
    model = _model(request)
    same_url: list[tuple[int, Entry, Request]] = []
    same_model: list[tuple[int, Entry, Request]] = []
    for number, entry in enumerate(cassette, 1):
        recorded = stored_request(entry)
        if recorded.method == request.method.upper() and canonical_url(recorded.url) == url:
            same_url.append((number, entry, recorded))
        elif model is not None and _model(recorded) == model:
            same_model.append((number, entry, recorded))
    best: Nearest | None = None
    best_score = (0, 0.0)
    live_body = canonical_body(request, ignore_fields)
    for number, entry, recorded in same_url or same_model:
        differences = diff_requests(
            recorded, request, ignore_fields=ignore_fields, match_headers=match_headers
        )
        # Fewest differing fields first; among equals, the most similar body (a cheap,
        # linear-time measure: the miss path must stay fast on big cassettes).
        similarity = SequenceMatcher(
            None, canonical_body(recorded, ignore_fields), live_body, autojunk=False
        ).quick_ratio()
        score = (len(differences), -similarity)
        if best is None or score < best_score:
            best, best_score = Nearest(entry, number, differences), score
    return best


def diff_requests(
    recorded: Request,
    live: Request,
    *,
    ignore_fields: Sequence[str] = (),
    match_headers: Sequence[str] = (),
) -> list[str]:
    """Every difference from ``recorded`` to ``live``, one line each, in key order."""
    lines: list[str] = []
    if recorded.method.upper() != live.method.upper():
        lines.append(f"method: {recorded.method.upper()} -> {live.method.upper()}")
    if canonical_url(recorded.url) != canonical_url(live.url):
        # Both as a cassette stores them (credential parameters left out, as the key leaves
        # them out): a key in the query is no difference.
        old_url, new_url = redact_url(stored_url(recorded.url)), redact_url(stored_url(live.url))
        lines.append(f"url: {pair(old_url, new_url)}")
    for name in dict.fromkeys((*KEY_HEADERS, *match_headers)):
        if is_secret_request_header(name):
            continue  # never in the key, so never a difference
        old, new = _header(recorded, name), _header(live, name)
        if old == new:
            continue
        if old is None:
            lines.append(f"headers.{name} added: {show(new)}")
        elif new is None:
            lines.append(f"headers.{name} removed (was {show(old)})")
        else:
            lines.append(f"headers.{name}: {pair(old, new)}")
    old_body = canonical_body(recorded, ignore_fields)
    new_body = canonical_body(live, ignore_fields)
    if old_body != new_body:
        old_json, new_json = _json(old_body), _json(new_body)
        if old_json is not _MISSING and new_json is not _MISSING:
            _diff_values(old_json, new_json, "", lines)
        else:
            old_text = _describe_bytes(old_body) if old_json is _MISSING else show(old_json)
            new_text = _describe_bytes(new_body) if new_json is _MISSING else show(new_json)
            lines.append(f"body: {old_text} -> {new_text}")
    return lines


def nearest_message(
    request: Request,
    cassette: Cassette,
    *,
    ignore_fields: Sequence[str] = (),
    match_headers: Sequence[str] = (),
    indent: str = "  ",
) -> str:
    """The miss message's block about the nearest recorded request ("" if there is none)."""
    nearest = find_nearest(
        request, cassette, ignore_fields=ignore_fields, match_headers=match_headers
    )
    if nearest is None:
        return ""
    recorded = nearest.entry.request
    lines = [
        f"{indent}nearest recorded request: {recorded.get('method', '?')} "
        f"{redact_url(str(recorded.get('url', '?')))} (entry {nearest.number}, "
        f"recorded {nearest.entry.recorded_at})"
    ]
    if not nearest.differences:
        # Same canonical request: the key must differ by what the diff cannot see.
        lines.append(
            f"{indent}differs in: no body or header field (check match_api_key, "
            "a pytest_llm_cache_normalize_request hook, or a key recorded by an older version)"
        )
    else:
        lines.append(f"{indent}differs in:")
        shown = nearest.differences[:MAX_LINES]
        lines += [f"{indent}  {line}" for line in shown]
        if len(nearest.differences) > MAX_LINES:
            lines.append(f"{indent}  ... {len(nearest.differences) - MAX_LINES} more")
    # A prompt may quote the request's own key: neither it nor a key shape is printed.
    text = scrub("\n".join(lines), credentials(request))
    assert isinstance(text, str)
    return mask_secrets(text) + "\n"


def _diff_values(old: object, new: object, path: str, lines: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            child = f"{path}.{key}" if path else str(key)
            if key not in new:
                lines.append(f"{child}: removed (was {show(old[key])})")
            elif key not in old:
                lines.append(f"{child}: added {show(new[key])}")
            else:
                _diff_values(old[key], new[key], child, lines)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            child = f"{path}[{i}]"
            if i >= len(new):
                lines.append(f"{child}: removed (was {show(old[i])})")
            elif i >= len(old):
                lines.append(f"{child}: added {show(new[i])}")
            else:
                _diff_values(old[i], new[i], child, lines)
    elif old != new or type(old) is not type(new):
        lines.append(f"{path or 'body'}: {pair(old, new)}")


def pair(old: object, new: object) -> str:
    """``old -> new``; two long strings are shown from just before where they part."""
    if isinstance(old, str) and isinstance(new, str):
        common = 0
        for a, b in zip(old, new, strict=False):
            if a != b:
                break
            common += 1
        start = max(0, common - _CONTEXT)
        if start and max(len(old), len(new)) > MAX_VALUE:
            return f"{_show_text(old[start:], True)} -> {_show_text(new[start:], True)}"
    return f"{show(old)} -> {show(new)}"


def show(value: object) -> str:
    """A value as a one-line diff shows it: JSON, long strings shortened."""
    if isinstance(value, str):
        return _show_text(value, False)
    return _cut(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def _show_text(value: str, cut_front: bool) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if cut_front:
        text = f'"{_ELLIPSIS}{text[1:]}'
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - len(_ELLIPSIS)] + _ELLIPSIS


def _header(request: Request, name: str) -> str | None:
    value = request.header(name)
    if value is not None and name == "content-type":
        return media_type(value)
    return value


def _json(data: bytes) -> object:
    if not data:
        return _MISSING
    try:
        return json.loads(data)
    except ValueError:
        return _MISSING


def _model(request: Request) -> str | None:
    if request.body[:1] != b"{":
        return None
    try:
        data = json.loads(request.body)
    except ValueError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def _describe_bytes(data: bytes) -> str:
    if not data:
        return "empty"
    try:
        return show(data.decode("utf-8"))
    except UnicodeDecodeError:
        return f"{len(data)} bytes"
