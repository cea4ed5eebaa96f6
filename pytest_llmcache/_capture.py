"""Turning a live exchange into an entry fit to commit: decoded, trimmed and scrubbed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from . import _body
from ._cassette import Entry
from ._exchange import Headers, Request
from ._key import KEY_HEADERS, canonical_body, media_type
from ._secrets import REDACTED, SECRET_QUERY_PARAMS, find_key_shape, is_secret_header, scrub

__all__ = ["CACHE_STATUS_HEADER", "SecretFound", "is_transient", "make_entry", "replay_headers"]

CACHE_STATUS_HEADER = "x-llm-cache-status"

# Framing headers describe the bytes on the wire, not the stored body. A stored
# content-encoding is not framing: it is kept only for a body stored still encoded (one this
# machine could not decode), which the client must then decode as it did live.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "upgrade", "te"})


class SecretFound(Exception):
    """A value shaped like an API key would have been written; nothing was."""


def is_transient(status: int) -> bool:
    """Rate limits and server errors are retried by SDKs and never stored."""
    return status == 429 or status >= 500


def make_entry(
    *,
    key: str,
    request: Request,
    status: int,
    headers: Headers,
    chunks: Sequence[bytes],
    match_headers: Iterable[str],
    ttl: float | None,
    duration: float,
    now: datetime,
    secrets: Iterable[str],
    test: str | None = None,
    cut_short: bool = False,
) -> Entry:
    """Build the entry for one call; raises :class:`SecretFound` rather than store a key."""
    response_headers, chunks = _decoded(headers, chunks)
    content_type = _first(headers, "content-type")
    if _body.is_stream_type(content_type):
        body: dict[str, Any] = {"chunks": _body.encode_chunks(c for c in chunks if c)}
    else:
        body = _body.encode_body(b"".join(chunks))
    stored_request = {
        "method": request.method.upper(),
        "url": _without_secret_params(request.url),
        "headers": _request_headers(request, match_headers),
        "body": _request_body(request),
    }
    stored_response = {"status": status, "headers": response_headers, "body": body}
    cleaned = scrub({"request": stored_request, "response": stored_response}, secrets)
    assert isinstance(cleaned, dict)
    where = find_key_shape(cleaned)
    if where is not None:
        raise SecretFound(where)
    return Entry(
        key=key,
        recorded_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ttl=ttl,
        duration=round(duration, 3),
        request=cleaned["request"],
        response=cleaned["response"],
        test=test,
        cut_short=cut_short,
    )


def replay_headers(headers: Headers, status: str) -> list[tuple[str, str]]:
    """Stored headers plus the cache status; framing is left to the client library."""
    out = [(k, v) for k, v in headers if k not in _FRAMING]
    out.append((CACHE_STATUS_HEADER, status))
    return out


def _decoded(headers: Headers, chunks: Sequence[bytes]) -> tuple[dict[str, str], list[bytes]]:
    """Decompress the body and keep the headers that still describe it."""
    encoding = _first(headers, "content-encoding")
    decoded: list[bytes] | None = list(chunks)
    if encoding:
        decoded = _body.decompress(chunks, encoding)
    keep_encoding = decoded is None
    stored: dict[str, str] = {}
    for name, value in headers:
        if (
            is_secret_header(name)
            or name in _HOP_BY_HOP
            or name == CACHE_STATUS_HEADER
            or name in ("content-length", "transfer-encoding")
            or (name == "content-encoding" and not keep_encoding)
        ):
            continue
        stored[name] = f"{stored[name]}, {value}" if name in stored else value
    return stored, list(chunks) if decoded is None else decoded


def _first(headers: Headers, name: str) -> str | None:
    return next((v for k, v in headers if k == name), None)


def _request_headers(request: Request, match_headers: Iterable[str]) -> dict[str, str]:
    stored: dict[str, str] = {}
    for name in (*KEY_HEADERS, *match_headers):
        value = request.header(name)
        if value is None or is_secret_header(name):
            continue
        if name == "content-type" and value.lower().startswith("multipart/"):
            value = media_type(value)
        stored[name] = value
    return stored


def _request_body(request: Request) -> dict[str, Any]:
    body = request.body
    content_type = request.header("content-type") or ""
    if content_type.lower().startswith("multipart/"):
        body = canonical_body(request)
    return _body.encode_body(body)


def _without_secret_params(url: str) -> str:
    split = urlsplit(url)
    if not split.query:
        return url
    pairs = parse_qsl(split.query, keep_blank_values=True)
    if not any(k.lower() in SECRET_QUERY_PARAMS for k, _ in pairs):
        return url
    query = urlencode([(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in pairs])
    return urlunsplit(split._replace(query=query))
