"""What counts as a secret, and how it is kept out of cassettes (SPEC §6)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from ._exchange import Request

__all__ = [
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_QUERY_PARAMS",
    "credentials",
    "find_key_shape",
    "is_secret_header",
    "redact_url",
    "scrub",
]

REDACTED = "<redacted>"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "x-amz-security-token",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "x-goog-user-project",
    }
)
"""Request or response headers never written to a cassette (account ids included)."""

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
"""Request headers that carry the caller's API key."""

SECRET_QUERY_PARAMS = frozenset({"key", "api_key", "access_token", "sig", "signature"})

# Well-known credential shapes: a cassette holding one of these is refused outright. A key
# starts a token ("task-management-..." holds "sk-..." but is a word, not a key); after an
# escaped "=" (%3D) or an escaped newline or tab it starts one too.
_KEY_SHAPES = re.compile(
    r"(?:(?<![A-Za-z0-9])|(?<=%3D)|(?<=%3d)|(?<=\\[nrt]))(?:"
    r"sk-ant-[A-Za-z0-9_\-]{20,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|gsk_[A-Za-z0-9]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r")"
)

# Values shorter than this are too likely to occur by chance to be replaced everywhere.
_MIN_SCRUB_LENGTH = 8


def is_secret_header(name: str) -> bool:
    """Whether a (lower-case) header name carries a credential, cookie or account id."""
    return name in SECRET_HEADERS


def credentials(request: Request) -> set[str]:
    """The secret values this request carries, to be scrubbed wherever they reappear."""
    found: set[str] = set()
    for name, value in request.headers:
        if name in SECRET_HEADERS:
            found.add(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                found.add(token)
    for name, value in parse_qsl(urlsplit(request.url).query, keep_blank_values=True):
        if name.lower() in SECRET_QUERY_PARAMS:
            found.add(value)
    return {v for v in found if len(v) >= _MIN_SCRUB_LENGTH}


def scrub(value: object, secrets: Iterable[str]) -> object:
    """A copy of a YAML-ready structure with every secret substring replaced."""
    ordered = sorted(secrets, key=len, reverse=True)
    if not ordered:
        return value
    return _scrub(value, ordered)


def _scrub(value: object, secrets: list[str]) -> object:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def find_key_shape(value: object, path: str = "") -> str | None:
    """The dotted path of the first string that looks like a real API key, if any."""
    if isinstance(value, str):
        return path or "." if _KEY_SHAPES.search(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            hit = find_key_shape(k, path) or find_key_shape(v, f"{path}.{k}" if path else str(k))
            if hit:
                return hit
    if isinstance(value, list):
        for i, v in enumerate(value):
            hit = find_key_shape(v, f"{path}[{i}]")
            if hit:
                return hit
    return None


def redact_url(url: str) -> str:
    """``url`` as it may be shown in a message or report: no credential in it."""
    split = urlsplit(url)
    netloc = split.netloc.rpartition("@")[2]
    pairs = parse_qsl(split.query, keep_blank_values=True)
    if any(k.lower() in SECRET_QUERY_PARAMS for k, _ in pairs):
        query = "&".join(
            f"{k}={REDACTED if k.lower() in SECRET_QUERY_PARAMS else v}" for k, v in pairs
        )
    else:
        query = split.query
    return split._replace(netloc=netloc, query=query).geturl()
