"""The request key: a sha256 over the parts of a request that change the answer (SPEC §3)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from . import _jsontext
from ._exchange import Request
from ._secrets import (
    CREDENTIAL_HEADERS,
    is_form,
    is_secret_param,
    is_secret_request_header,
    redact_fields,
    redact_form,
    redact_multipart,
)

__all__ = ["KEY_HEADERS", "KEY_VERSION", "KeyOptions", "canonical_url", "media_type", "request_key"]

KEY_VERSION = 1
"""Bumped whenever the canonical form changes, so old cassettes can be migrated."""

KEY_HEADERS = ("accept", "content-type", "openai-beta", "anthropic-beta")
"""Request headers that change the answer; everything else (user-agent, x-stainless-*,
retry counters, tracing, credentials, cookies) is left out."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_API_KEY_SALT = b"pytest-llmcache api key v1\x00"


class KeyOptions(NamedTuple):
    """Per-test choices that shape the key. (A named tuple: every run imports this module,
    and making a dataclass costs more than the rest of it.)"""

    ignore_fields: tuple[str, ...] = ()
    match_headers: tuple[str, ...] = ()
    match_api_key: bool = False


_NO_OPTIONS = KeyOptions()


def request_key(request: Request, options: KeyOptions = _NO_OPTIONS) -> str:
    """The hex key of ``request``: equal for requests a provider would answer alike."""
    text, body = _canonical_parts(request, options)
    # The hash of every part followed by a NUL, taken in one piece: the text parts end
    # with an empty one, so their join ends with the NUL that follows the last.
    text.append("")
    return _sha256(b"".join(("\x00".join(text).encode(), body, b"\x00"))).hexdigest()[:32]


def _builtin_sha256() -> Callable[[bytes], hashlib._Hash]:
    """Python's own SHA-256, else OpenSSL's (``hashlib.sha256``): the same digest. A key
    hashes a few hundred bytes, and setting up an OpenSSL digest for them costs more, in a
    test run, than the hashing itself (about 7 us a call, measured; the module loads once)."""
    for name in ("_sha2", "_sha256"):  # (named so from Python 3.12; before, each size apart)
        try:
            sha256: Callable[[bytes], hashlib._Hash] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
        return sha256
    return hashlib.sha256


_sha256 = _builtin_sha256()


def _canonical_parts(request: Request, options: KeyOptions) -> tuple[list[str], bytes]:
    """The key's text parts, and the canonical body that follows them."""
    # The first value of each header, all found in one pass: reversed, an earlier value
    # of a repeated name overwrites a later one.
    first = dict(reversed(request.headers))
    text = [_VERSION_PART, request.method.upper(), canonical_url(request.url)]
    for name in _key_headers(options.match_headers):
        value = first.get(name)
        if value is not None:
            if name == "content-type":
                value = media_type(value)
            text.append(f"{name}:{value}")
    if options.match_api_key:
        text.append("api-key:" + api_key_fingerprint(request))
    content_type = first.get("content-type") or ""
    return text, _canonical_body(request.body, content_type, options.ignore_fields)


_VERSION_PART = f"v{KEY_VERSION}"


@functools.lru_cache(maxsize=256)
def _key_headers(match_headers: tuple[str, ...]) -> tuple[str, ...]:
    # A credential stays out even when listed: CI with another key must still replay.
    return tuple(n for n in (*KEY_HEADERS, *match_headers) if not is_secret_request_header(n))


@functools.lru_cache(maxsize=4096)
def canonical_url(url: str) -> str:
    """Scheme, host and port normalized, query sorted; userinfo and secret query parameters
    dropped. (A suite calls the same few endpoints again and again: each is worked out once.)"""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    host = (split.hostname or "").lower()
    port = split.port or _DEFAULT_PORTS.get(scheme, 0)
    query = sorted(
        (k, v) for k, v in parse_qsl(split.query, keep_blank_values=True) if not is_secret_param(k)
    )
    tail = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{host}:{port}{split.path or '/'}{tail}"


@functools.lru_cache(maxsize=256)
def media_type(content_type: str) -> str:
    """``multipart/form-data; boundary=x`` -> ``multipart/form-data``."""
    return content_type.split(";", 1)[0].strip().lower()


def api_key_fingerprint(request: Request) -> str:
    """A salted hash of the request's API key: scopes entries by key without storing it."""
    values = [request.header(name) for name in CREDENTIAL_HEADERS]
    # Some providers (Gemini's ``?key=``) take the key in the query, which the URL part drops.
    values += [v for k, v in parse_qsl(urlsplit(request.url).query) if is_secret_param(k)]
    for value in values:
        if value:
            return _sha256(_API_KEY_SALT + value.encode()).hexdigest()[:16]
    return "none"


def canonical_body(request: Request, ignore_fields: Sequence[str] = ()) -> bytes:
    """JSON re-serialized with sorted keys, multipart with its boundary normalized, else bytes.

    Fields with credential names hold ``<redacted>`` instead of their value, in JSON at any
    depth and in multipart forms: another credential asks the same question.
    """
    return _canonical_body(request.body, request.header("content-type") or "", ignore_fields)


def _canonical_body(body: bytes, raw_type: str, ignore_fields: Sequence[str]) -> bytes:
    if not body:
        return b""
    content_type = raw_type.lower()
    if content_type.startswith("multipart/"):
        # The boundary's own case matters: it is found in the body as sent.
        return redact_multipart(_normalize_boundary(body, raw_type), _BOUNDARY)[0]
    if is_form(content_type):
        return redact_form(body)[0]
    if body[:1] in (b"{", b"[") or "json" in content_type:
        try:
            text = body.decode("utf-8", "surrogatepass")
            # What _DECODER.decode accepts: one value, JSON whitespace either side of it
            # (the scanner stops when no value starts at the index it is given).
            data, end = _scan(text, len(text) - len(text.lstrip(_JSON_SPACE)))
        except (StopIteration, ValueError):
            return body
        if text[end:].lstrip(_JSON_SPACE):
            return body  # more after the value: not one JSON document
        for path in ignore_fields:
            _drop(data, path.split("."))
        redact_fields(data)
        # A JSON string may escape half a surrogate pair, which strict UTF-8 refuses.
        return _encode(data).encode("utf-8", "surrogatepass")
    return body


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


# Built once: json.loads and json.dumps with options build a new coder on every call.
# 0 and 0.0 are the same JSON number and get the same answer.
_DECODER = json.JSONDecoder(parse_float=_number)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

# The scanner that _DECODER.decode calls after a regex match past leading whitespace, and
# before one past trailing whitespace: called directly, with str methods in their place.
_scan = _jsontext.scanner(_DECODER)
_JSON_SPACE = " \t\n\r"

_encode = _jsontext.encoder(_ENCODER)


_BOUNDARY = "BOUNDARY"


def _normalize_boundary(body: bytes, content_type: str) -> bytes:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return body.replace(value.strip('"').encode(), _BOUNDARY.encode())
    return body


def _drop(data: object, path: list[str]) -> None:
    """Remove the field at a dotted ``path``; ``*`` matches every key or list item."""
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        keys = list(data) if head == "*" else [head]
        for key in keys:
            if key in data:
                if rest:
                    _drop(data[key], rest)
                else:
                    del data[key]
    elif isinstance(data, list):
        if head == "*":
            indices = range(len(data))
        elif head.isdigit() and int(head) < len(data):
            indices = range(int(head), int(head) + 1)
        else:
            return
        if rest:
            for i in indices:
                _drop(data[i], rest)
        else:
            for i in reversed(indices):
                del data[i]
