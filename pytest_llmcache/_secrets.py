"""What counts as a secret, and how it is kept out of cassettes, keys and messages (SPEC §6).

Three rules, each applied wherever a request is stored, keyed or shown:

- by name: credential headers, URL userinfo, query parameters and body fields with credential
  names never leave the process (their values become ``<redacted>`` or they are dropped);
- by value: the values found under those names are learned, and every later appearance of one
  (an error message echoing the key, a debug header) is replaced too;
- by shape: a string that looks like a well-known API key is refused, unless an allow-list
  pattern says it is an example.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    quote_plus,
    unquote,
    unquote_plus,
    urlsplit,
)

from ._exchange import Request

__all__ = [
    "CREDENTIAL_HEADERS",
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_QUERY_PARAMS",
    "allowed_by",
    "credentials",
    "find_key_shape",
    "is_secret_field",
    "is_secret_header",
    "is_secret_param",
    "is_secret_request_header",
    "key_shapes",
    "mask",
    "mask_secrets",
    "multipart_boundary",
    "redact_fields",
    "redact_multipart",
    "redact_url",
    "scrub",
    "stored_url",
    "unredacted_fields",
]

REDACTED = "<redacted>"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
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

CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
)
"""Request headers that carry the caller's API key."""

# A request header named with one of these words carries a credential of some kind
# (x-custom-auth, x-session-token, x-client-secret). Only request headers: a response's
# x-ratelimit-remaining-tokens is a count, not a token.
_CREDENTIAL_WORDS = (
    "key",
    "token",
    "secret",
    "signature",
    "credential",
    "password",
    "session",
    "auth",
)

SECRET_QUERY_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "sig",
        "signature",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-credential",
        "x-goog-api-key",
        "x-goog-signature",
        "x-goog-credential",
        "subscription-key",
        "client_secret",
        "password",
    }
)
"""Query parameters (compared in lower case) whose values are credentials."""

# Body field names, compared lower-case without separators (api_key, apiKey and API-KEY are
# one name). ``key`` alone is a generic field, and counters (max_tokens, prompt_tokens,
# token_count) are not tokens, so names match whole or by these endings only.
_SECRET_FIELDS = frozenset({"token", "secret", "password", "passwd", "credential", "credentials"})
_SECRET_FIELD_ENDINGS = (
    "apikey",
    "apisecret",
    "secret",
    "secretkey",
    "privatekey",
    "accesskey",
    "subscriptionkey",
    "password",
    "passphrase",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "bearertoken",
    "sessiontoken",
    "securitytoken",
    "authorization",
)
_NAME_SEPARATORS = re.compile(r"[^a-z0-9]")


# Well-known credential shapes: a cassette holding one of these is refused outright. A key
# starts a token ("task-management-..." holds "sk-..." but is a word, not a key); after an
# escaped "=" (%3D) or an escaped newline or tab it starts one too.
# The patterns below are compiled on first use: a replay that hits never needs them, and
# compiling them costs more than the rest of this module.
@functools.cache
def _key_shapes() -> re.Pattern[str]:
    return re.compile(
        r"(?:(?<![A-Za-z0-9])|(?<=%3D)|(?<=%3d)|(?<=\\[nrt]))(?:"
        r"sk-ant-[A-Za-z0-9_\-]{20,}"
        r"|sk-[A-Za-z0-9_\-]{20,}"
        r"|AIza[0-9A-Za-z_\-]{30,}"
        r"|gsk_[A-Za-z0-9]{20,}"
        r"|AKIA[0-9A-Z]{16}"
        r")"
    )


_MASK_KEEP = 6

# Values shorter than this are too likely to occur by chance to be replaced everywhere; under
# their own names they are still redacted.
_MIN_SCRUB_LENGTH = 8


@functools.cache
def _url_in_text() -> re.Pattern[str]:
    return re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`\[\]]+")


@functools.cache
def _userinfo() -> re.Pattern[str]:
    return re.compile(r"(?<=://)[^/?#\s@]*@")


@functools.cache
def _sigv4_parts() -> re.Pattern[str]:
    return re.compile(r"(?:Credential|Signature)=([^,/\s]+)")


@functools.cache
def _part_name() -> re.Pattern[bytes]:
    return re.compile(rb';\s*name="([^"]*)"', re.I)


# -- names ---------------------------------------------------------------------------------


def is_secret_header(name: str) -> bool:
    """Whether a (lower-case) header name is on the list of credential, cookie and account
    id headers; used for response headers, whose names say nothing about their values."""
    return name in SECRET_HEADERS


@functools.lru_cache(maxsize=1024)
def is_secret_request_header(name: str) -> bool:
    """Whether a (lower-case) request header carries a credential, by the list or its name."""
    return name in SECRET_HEADERS or any(word in name for word in _CREDENTIAL_WORDS)


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's value is a credential (the name in any case)."""
    return name.lower() in SECRET_QUERY_PARAMS


@functools.lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    """Whether a JSON or form field of this name holds a credential (any case, any separator).

    (Every request key walks its body's field names, which are few and repeat: each is
    worked out once.)"""
    flat = _NAME_SEPARATORS.sub("", name.lower())
    return flat in _SECRET_FIELDS or flat.endswith(_SECRET_FIELD_ENDINGS)


# -- bodies --------------------------------------------------------------------------------


def redact_fields(data: object) -> list[str]:
    """Replace, in place, every string under a credential field name at any depth with
    ``<redacted>``; return the values replaced."""
    found: list[str] = []
    _redact_fields(data, found)
    return found


def _redact_fields(data: object, found: list[str]) -> None:
    # Every request key walks its body: only mappings and lists are entered (a call for
    # each string or number would cost more than the walk).
    if isinstance(data, dict):
        for name, value in data.items():
            # Only strings: ``is_secret: true`` or a schema's ``password: {type: string}``
            # is no credential (a nested mapping is searched by its own names).
            if isinstance(value, str):
                if value != REDACTED and is_secret_field(str(name)):
                    found.append(value)
                    data[name] = REDACTED
            elif isinstance(value, dict | list):
                _redact_fields(value, found)
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict | list):
                _redact_fields(item, found)


def multipart_boundary(content_type: str) -> str | None:
    """The boundary of a ``multipart/*`` content type, or ``None``."""
    if not content_type.lower().startswith("multipart/"):
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"')
    return None


def _form_values(body: bytes, boundary: bytes) -> Iterator[tuple[str, int, int]]:
    """Each form field of a multipart body: its name and where its value starts and ends."""
    delimiter = b"--" + boundary
    position = body.find(delimiter)
    while position >= 0:
        start = position + len(delimiter)
        if body[start : start + 2] == b"--":
            return
        following = body.find(delimiter, start)
        # A last part with no closing delimiter (a body cut short) still holds a value.
        part_end = following if following >= 0 else len(body)
        blank = body.find(b"\r\n\r\n", start, part_end)
        gap = 4
        if blank < 0:
            blank, gap = body.find(b"\n\n", start, part_end), 2
        if blank >= 0:
            named = _part_name().search(body, start, blank)
            end = part_end
            for newline in (b"\r\n", b"\n"):
                if body.endswith(newline, blank + gap, end):
                    end -= len(newline)
                    break
            if named is not None:
                yield named.group(1).decode("utf-8", "replace"), blank + gap, max(end, blank + gap)
        position = following


def redact_multipart(body: bytes, boundary: str) -> tuple[bytes, list[str]]:
    """The body with each credential-named form field's value replaced by ``<redacted>``,
    and the values replaced."""
    found: list[str] = []
    pieces: list[bytes] = []
    last = 0
    for name, start, end in _form_values(body, boundary.encode("utf-8", "surrogateescape")):
        value = body[start:end]
        if is_secret_field(name) and value != REDACTED.encode():
            found.append(value.decode("utf-8", "replace"))
            pieces += [body[last:start], REDACTED.encode()]
            last = end
    if not found:
        return body, found
    pieces.append(body[last:])
    return b"".join(pieces), found


FORM_TYPE = "application/x-www-form-urlencoded"
"""An HTML form's body (``name=value&...``), as OAuth token endpoints take credentials."""


def is_form(content_type: str) -> bool:
    """Whether a request's content type is a form-encoded body."""
    return content_type.lower().startswith(FORM_TYPE)


_REDACTED_BYTES = REDACTED.encode()


def redact_form(body: bytes) -> tuple[bytes, list[str]]:
    """A form-encoded body with each credential-named field's value replaced by
    ``<redacted>``, and the values replaced (decoded)."""
    pieces = body.split(b"&")
    found = []
    for number, _, value in _form_secrets(pieces):
        found.append(unquote_plus(value.decode("utf-8", "replace")))
        pieces[number] = pieces[number].partition(b"=")[0] + b"=" + _REDACTED_BYTES
    return (b"&".join(pieces) if found else body), found


def _form_secrets(pieces: list[bytes]) -> Iterator[tuple[int, str, bytes]]:
    """``(place, name, value)`` of each credential-named field of a form-encoded body (split
    at ``&``) whose value is not redacted yet."""
    for number, piece in enumerate(pieces):
        raw_name, _, value = piece.partition(b"=")
        if value and value != _REDACTED_BYTES:
            name = unquote_plus(raw_name.decode("utf-8", "replace"))
            if is_secret_field(name):
                yield number, name, value


def _json_of(body: bytes, content_type: str) -> object:
    stripped = body.lstrip()
    if not stripped or not (stripped[:1] in (b"{", b"[") or "json" in content_type.lower()):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def unredacted_fields(body: bytes, content_type: str) -> list[str]:
    """The credential-named fields of a stored request body whose value is not redacted.

    A stored multipart body has its boundary normalized to ``BOUNDARY`` (and its stored
    content type has none), so that is the boundary looked for when the type gives none.
    """
    data = _json_of(body, content_type)
    if data is not None:
        return [name for name, _ in _secret_fields(data, "")]
    if is_form(content_type):
        return [name for _, name, _ in _form_secrets(body.split(b"&"))]
    if content_type.lower().startswith("multipart/") or body.startswith(b"--BOUNDARY"):
        boundary = multipart_boundary(content_type) or "BOUNDARY"
        return [
            name
            for name, start, end in _form_values(body, boundary.encode())
            if is_secret_field(name) and body[start:end] != REDACTED.encode()
        ]
    return []


def _secret_fields(data: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for name, value in data.items():
            child = f"{path}.{name}" if path else str(name)
            if isinstance(value, str) and is_secret_field(str(name)):
                if value != REDACTED:
                    yield child, value
            else:
                yield from _secret_fields(value, child)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _secret_fields(item, f"{path}[{i}]")


# -- values --------------------------------------------------------------------------------


def credentials(request: Request) -> set[str]:
    """The secret values this request carries, to be scrubbed wherever they reappear."""
    found: set[str] = set()
    for name, value in request.headers:
        if is_secret_request_header(name):
            found.add(value)
            found.update(_header_parts(name, value))
    split = _split(request.url)
    if split is not None:
        for part in (split.username, split.password):
            if part:
                found.update({part, unquote(part)})
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            if is_secret_param(name):
                found.update({value, quote(value, safe=""), quote_plus(value)})
    content_type = request.header("content-type") or ""
    boundary = multipart_boundary(content_type)
    if boundary is not None:
        found.update(redact_multipart(request.body, boundary)[1])
    elif is_form(content_type):
        for value in redact_form(request.body)[1]:
            found.update({value, quote(value, safe=""), quote_plus(value)})
    else:
        data = _json_of(request.body, content_type)
        if data is not None:
            found.update(value for _, value in _secret_fields(data, ""))
    return {v for v in found if len(v) >= _MIN_SCRUB_LENGTH}


def _header_parts(name: str, value: str) -> set[str]:
    """The credentials inside one header value: a scheme's token, Basic's user and
    password, SigV4's access key id and signature, each cookie's value."""
    parts: set[str] = set()
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if token and scheme.lower() in ("bearer", "token", "apikey", "key"):
        parts.add(token)
    elif token and scheme.lower() == "basic":
        parts.add(token)
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            pass
        else:
            parts.update({f"{user}:{password}", user, password})
    elif scheme.upper().startswith("AWS4-"):
        parts.update(_sigv4_parts().findall(token))
    if name == "cookie":
        parts.update(cookie.partition("=")[2].strip() for cookie in value.split(";"))
    return parts


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


# -- shapes --------------------------------------------------------------------------------


def key_shapes(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string that looks like a real API key: its dotted path and the key itself.

    A mapping key is reported at its mapping's path.
    """
    if isinstance(value, str):
        for match in _key_shapes().finditer(value):
            yield path or ".", match.group()
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from key_shapes(k, path)
            yield from key_shapes(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from key_shapes(v, f"{path}[{i}]")


def find_key_shape(value: object, path: str = "") -> str | None:
    """The dotted path of the first string that looks like a real API key, if any."""
    return next((where for where, _ in key_shapes(value, path)), None)


def allowed_by(value: str, patterns: Sequence[str]) -> str | None:
    """The first pattern (a value, or ``*`` for any characters) that ``value`` matches."""
    return next((p for p in patterns if _pattern(p).fullmatch(value)), None)


@functools.lru_cache(maxsize=256)
def _pattern(pattern: str) -> re.Pattern[str]:
    # Only ``*`` is special: keys hold no ``?`` or ``[``, and a value listed as it is must
    # match itself.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


def mask(value: str) -> str:
    """A key as a message may show it: its first characters, then ``...``."""
    return value[:_MASK_KEEP] + "..."


_KEY_STARTS = ("sk-", "AIza", "gsk_", "AKIA")
"""How every shape of :func:`_key_shapes` starts: text with none of them needs no pattern."""


def _mask_key_shapes(text: str) -> str:
    if not any(start in text for start in _KEY_STARTS):
        return text  # (the pattern is not even compiled for a run whose messages hold none)
    return _key_shapes().sub(lambda match: mask(match.group()), text)


# -- what may be shown -----------------------------------------------------------------------


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def stored_url(url: str) -> str:
    """``url`` as a cassette stores it: no userinfo, no credential parameters.

    Everything else stays as sent, so the stored URL reads like the live one.
    """
    try:
        split = urlsplit(url)
    except ValueError:
        return _redact_unparsed(url, None)
    netloc = split.netloc.rpartition("@")[2]
    query = _redact_query(split.query, None)
    if netloc == split.netloc and query == split.query:
        return url
    return split._replace(netloc=netloc, query=query).geturl()


def _redact_unparsed(url: str, placeholder: str | None) -> str:
    # A URL urlsplit refuses (a bad IPv6 host) still loses its userinfo and credentials.
    head, question, rest = _userinfo().sub("", url).partition("?")
    query, hash_, fragment = rest.partition("#")
    return head + question + _redact_query(query, placeholder) + hash_ + fragment


def _redact_query(query: str, placeholder: str | None) -> str:
    """The query with each credential parameter's value replaced (``None``: the parameter
    left out)."""
    if not query:
        return query
    pieces = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        if placeholder is None:
            if is_secret_param(unquote_plus(name)):
                continue
        # An empty value hides nothing, and leaves an already redacted URL as it is.
        elif equals and value and is_secret_param(unquote_plus(name)):
            piece = f"{name}={placeholder}"
        pieces.append(piece)
    return "&".join(pieces)


def redact_url(url: str) -> str:
    """``url`` as it may be shown in a message or report: no credential in it."""
    try:
        split = urlsplit(url)
    except ValueError:
        return _mask_key_shapes(_redact_unparsed(url, REDACTED))
    netloc = split.netloc.rpartition("@")[2]
    query = _redact_query(split.query, REDACTED)
    if netloc != split.netloc or query != split.query:
        url = split._replace(netloc=netloc, query=query).geturl()
    return _mask_key_shapes(url)


def mask_secrets(text: str) -> str:
    """``text`` fit for a message: each URL in it redacted, each key-shaped value masked."""
    if "://" in text:
        text = _url_in_text().sub(lambda match: redact_url(match.group()), text)
    return _mask_key_shapes(text)
