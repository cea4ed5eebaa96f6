"""Turning a live exchange into an entry fit to commit: decoded, trimmed and scrubbed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from . import _body
from ._entry import Entry
from ._exchange import Headers, Request
from ._key import KEY_HEADERS, canonical_body, media_type
from ._secrets import (
    allowed_by,
    credentials,
    is_form,
    is_secret_header,
    is_secret_request_header,
    key_shapes,
    mask,
    redact_fields,
    scrub,
    stored_url,
)

__all__ = [
    "CACHE_STATUS_HEADER",
    "SecretFound",
    "is_transient",
    "make_entry",
    "refusal_help",
    "replay_headers",
]

CACHE_STATUS_HEADER = "x-llm-cache-status"

# Framing headers describe the bytes on the wire, not the stored body. A stored
# content-encoding is not framing: it is kept only for a body stored still encoded (one this
# machine could not decode), which the client must then decode as it did live.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "upgrade", "te"})


class SecretFound(Exception):
    """A value shaped like an API key would have been written; nothing was.

    ``str()`` of it is the dotted path of the value in the entry.
    """

    def __init__(self, path: str, masked: str) -> None:
        super().__init__(path)
        self.path = path
        """Where the value is: ``response.body.json.choices[0].message.content``."""
        self.masked = masked
        """Its first characters only (``sk-pro...``): safe to print."""


def refusal_help(found: SecretFound) -> str:
    """What a refusal message says about the value and how to let an example through."""
    return (
        f"  where: {found.path}\n"
        f"  value: {found.masked} (shaped like an API key; the rest is not shown)\n"
        "  a real key: keep it out of what the test sends and receives.\n"
        "  not a key (an example in an answer, a test fixture): allow it by its value or a\n"
        "  '*' pattern that fits only such values, on the test:\n"
        '    @pytest.mark.llm_cache(allow_secrets=["sk-proj-EXAMPLE*"])\n'
        "  or for the whole suite, in the ini file ([pytest] or [tool.pytest.ini_options]):\n"
        "    llm_cache_allow_secrets = sk-proj-EXAMPLE*"
    )


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
    allow_secrets: Sequence[str] = (),
) -> Entry:
    """Build the entry for one call; raises :class:`SecretFound` rather than store a key.

    ``secrets`` are values to scrub wherever they appear (the request's own credentials are
    added); ``allow_secrets`` are values or ``*`` patterns of key-shaped strings that are
    not keys: those are kept, and the entry lists the patterns it needed.
    """
    response_headers, chunks = _decoded(headers, chunks)
    content_type = _first(headers, "content-type")
    if _body.is_stream_type(content_type):
        body: dict[str, Any] = {"chunks": _body.encode_chunks(c for c in chunks if c)}
    else:
        body = _body.encode_body(b"".join(chunks))
    stored_request = {
        "method": request.method.upper(),
        "url": stored_url(request.url),
        "headers": _request_headers(request, match_headers),
        "body": _request_body(request),
    }
    stored_response = {"status": status, "headers": response_headers, "body": body}
    learned = {*secrets, *credentials(request)}
    cleaned = scrub({"request": stored_request, "response": stored_response}, learned)
    assert isinstance(cleaned, dict)
    # The test's id is written too (a parametrized id can hold anything).
    needed = _allowances({"test": test, **cleaned}, allow_secrets)
    return Entry(
        key=key,
        recorded_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ttl=ttl,
        duration=round(duration, 3),
        request=cleaned["request"],
        response=cleaned["response"],
        test=test,
        cut_short=cut_short,
        allow_secrets=needed,
    )


def _allowances(data: dict[str, Any], patterns: Sequence[str]) -> tuple[str, ...]:
    """The patterns the key-shaped values in ``data`` need; :class:`SecretFound` for one
    that no pattern allows."""
    needed: dict[str, None] = {}
    for where, value in key_shapes(data):
        pattern = allowed_by(value, patterns)
        if pattern is None:
            raise SecretFound(where, mask(value))
        needed[pattern] = None
    return tuple(needed)


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
        if value is None or is_secret_request_header(name):
            continue
        if name == "content-type" and value.lower().startswith("multipart/"):
            value = media_type(value)
        stored[name] = value
    return stored


def _request_body(request: Request) -> dict[str, Any]:
    body = request.body
    content_type = request.header("content-type") or ""
    if content_type.lower().startswith("multipart/") or is_form(content_type):
        # Credential fields redacted (and a multipart boundary normalized), as the key
        # sees it.
        return _body.encode_body(canonical_body(request))
    stored = _body.encode_body(body)
    if "json" in stored:
        redact_fields(stored["json"])
    elif "text" in stored and stored["text"].lstrip()[:1] in ("{", "["):
        # JSON that could not be stored as a structure (a duplicate key, a huge number)
        # is stored as text: its credential fields are redacted all the same.
        try:
            data = json.loads(stored["text"])
        except ValueError:
            return stored
        if redact_fields(data):
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            return _body.encode_body(text.encode("utf-8", "surrogatepass"))
    return stored
