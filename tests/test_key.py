"""The request key: what changes it and what must not (SPEC §3)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable

import httpx
import pytest

from pytest_llmcache import _jsontext, _key
from pytest_llmcache._exchange import Request
from pytest_llmcache._key import (
    KeyOptions,
    canonical_body,
    canonical_url,
    media_type,
    request_key,
)

URL = "https://api.openai.com/v1/chat/completions"
JSON = (("content-type", "application/json"),)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": False}


def post(
    body: bytes | dict[str, object] = CHAT,
    headers: tuple[tuple[str, str], ...] = JSON,
    url: str = URL,
    method: str = "POST",
) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request(method, url, headers, raw)


def key(request: Request, **options: object) -> str:
    return request_key(request, KeyOptions(**options))  # type: ignore[arg-type]


def from_httpx(request: httpx.Request) -> Request:
    return Request(
        request.method,
        str(request.url),
        tuple((k.lower(), v) for k, v in request.headers.items()),
        request.read(),
    )


def multipart(content: bytes, name: str = "a.wav") -> Request:
    request = httpx.Request(
        "POST",
        "https://api.openai.com/v1/audio/transcriptions",
        files={"file": (name, content)},
        data={"model": "whisper-1"},
    )
    return from_httpx(request)


SAME = [
    pytest.param(
        post(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1}'),
        post(b'{"n":1,"messages":[{"content":"hi","role":"user"}],"model":"m"}'),
        id="json-key-order",
    ),
    pytest.param(
        post(b'{"model":"m","n":1}'),
        post(b'{\n  "model" :  "m",\n\t"n": 1\n}\n'),
        id="json-whitespace",
    ),
    pytest.param(post(b'{"temperature":0}'), post(b'{"temperature":0.0}'), id="zero-int-float"),
    pytest.param(post(b'{"temperature":1}'), post(b'{"temperature":1.0}'), id="one-int-float"),
    pytest.param(
        post(b'{"content":"\\u00e9"}'), post('{"content":"é"}'.encode()), id="json-escapes"
    ),
    pytest.param(
        post(),
        post(headers=(*JSON, ("user-agent", "OpenAI/Python 1.0"))),
        id="user-agent",
    ),
    pytest.param(
        post(headers=(*JSON, ("x-stainless-os", "Linux"), ("x-stainless-lang", "python"))),
        post(headers=(*JSON, ("x-stainless-os", "MacOS"), ("x-stainless-runtime", "cpython"))),
        id="x-stainless",
    ),
    pytest.param(
        post(headers=(*JSON, ("x-stainless-retry-count", "0"))),
        post(headers=(*JSON, ("x-stainless-retry-count", "2"))),
        id="retry-count",
    ),
    pytest.param(
        post(headers=(*JSON, ("authorization", "Bearer one"))),
        post(headers=(*JSON, ("authorization", "Bearer two"))),
        id="authorization",
    ),
    pytest.param(
        post(headers=(*JSON, ("x-api-key", "one"))),
        post(headers=(*JSON, ("x-api-key", "two"))),
        id="x-api-key",
    ),
    pytest.param(
        post(headers=(*JSON, ("cookie", "a=1"))),
        post(headers=(*JSON, ("cookie", "a=2"))),
        id="cookie",
    ),
    pytest.param(
        post(headers=(*JSON, ("traceparent", "00-aaaa-bbbb-01"))),
        post(headers=(*JSON, ("traceparent", "00-cccc-dddd-01"))),
        id="traceparent",
    ),
    pytest.param(
        post(headers=(*JSON, ("idempotency-key", "stainless-python-retry-1"))),
        post(headers=(*JSON, ("idempotency-key", "stainless-python-retry-2"))),
        id="idempotency-key",
    ),
    pytest.param(
        post(headers=(*JSON, ("x-fern-sdk-version", "1.0"), ("x-fern-language", "Python"))),
        post(headers=(*JSON, ("x-fern-sdk-version", "2.0"))),
        id="x-fern",
    ),
    pytest.param(
        post(headers=(*JSON, ("connection", "keep-alive"), ("content-length", "10"))),
        post(headers=(*JSON, ("connection", "close"), ("content-length", "99"))),
        id="hop-by-hop-and-framing",
    ),
    pytest.param(
        post(headers=(("content-type", "application/json; charset=utf-8"),)),
        post(headers=(("content-type", "Application/JSON"),)),
        id="content-type-params-and-case",
    ),
    pytest.param(
        post(url="https://h.example/v1/x?b=2&a=1"),
        post(url="https://h.example/v1/x?a=1&b=2"),
        id="query-order",
    ),
    pytest.param(
        post(url="https://h.example/v1/x?a=1&key=one"),
        post(url="https://h.example/v1/x?api_key=two&a=1"),
        id="secret-query",
    ),
    pytest.param(
        post(url="https://h.example/v1/x?access_token=one&sig=s&signature=t"),
        post(url="https://h.example/v1/x?KEY=two"),
        id="secret-query-more",
    ),
    pytest.param(post(url="https://h.example/v1"), post(url="https://h.example:443/v1"), id="443"),
    pytest.param(post(url="http://h.example/v1"), post(url="http://h.example:80/v1"), id="80"),
    pytest.param(post(url="https://H.Example/v1"), post(url="HTTPS://h.example/v1"), id="case"),
    pytest.param(post(url="https://h.example"), post(url="https://h.example/"), id="root"),
    pytest.param(post(method="post"), post(method="POST"), id="method-case"),
    pytest.param(multipart(b"RIFF same"), multipart(b"RIFF same"), id="multipart-boundary"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_equal_keys(a: Request, b: Request) -> None:
    assert a != b
    assert key(a) == key(b)


DIFFERENT = [
    pytest.param(post(b'{"temperature":0}'), post(b'{"temperature":1}'), id="value"),
    pytest.param(post(b'{"n":1}'), post(b'{"n":"1"}'), id="number-vs-string"),
    pytest.param(post(b'{"n":1}'), post(b'{"n":true}'), id="number-vs-bool"),
    pytest.param(post(b'{"n":0.5}'), post(b'{"n":0.50001}'), id="close-floats"),
    pytest.param(post(b'{"a":[1,2]}'), post(b'{"a":[2,1]}'), id="list-order"),
    pytest.param(post({**CHAT, "stream": True}), post({**CHAT, "stream": False}), id="stream"),
    pytest.param(post({**CHAT, "stream": True}), post(CHAT), id="stream-vs-absent"),
    pytest.param(
        post(headers=(*JSON, ("accept", "application/json"))),
        post(headers=(*JSON, ("accept", "text/event-stream"))),
        id="accept",
    ),
    pytest.param(
        post(b"a=1", headers=(("content-type", "application/x-www-form-urlencoded"),)),
        post(b"a=1", headers=(("content-type", "text/plain"),)),
        id="content-type",
    ),
    pytest.param(
        post(headers=(*JSON, ("openai-beta", "assistants=v2"))),
        post(headers=(*JSON, ("openai-beta", "assistants=v1"))),
        id="openai-beta",
    ),
    pytest.param(
        post(headers=(*JSON, ("anthropic-beta", "prompt-caching-2024-07-31"))),
        post(headers=JSON),
        id="anthropic-beta",
    ),
    pytest.param(post(method="POST"), post(method="PUT"), id="method"),
    pytest.param(post(url=URL), post(url=URL.replace("chat/", "")), id="path"),
    pytest.param(post(url="https://a.example/v1"), post(url="https://b.example/v1"), id="host"),
    pytest.param(post(url="http://h.example/v1"), post(url="https://h.example/v1"), id="scheme"),
    pytest.param(post(url="http://h:8000/v1"), post(url="http://h:8001/v1"), id="port"),
    pytest.param(post(url="https://h/v1?a=1"), post(url="https://h/v1?a=2"), id="query"),
    pytest.param(post(url="https://h/v1?a=1"), post(url="https://h/v1"), id="query-absent"),
    pytest.param(post(b"hello"), post(b"hello "), id="raw-bytes"),
    pytest.param(post(b"{not json"), post(b"{not json "), id="broken-json"),
    pytest.param(multipart(b"RIFF one"), multipart(b"RIFF two"), id="multipart-content"),
    pytest.param(multipart(b"RIFF", "a.wav"), multipart(b"RIFF", "b.wav"), id="multipart-name"),
]


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_keys(a: Request, b: Request) -> None:
    assert key(a) != key(b)


def test_multipart_requests_really_have_different_boundaries() -> None:
    # Guards the multipart case above: httpx must have drawn two random boundaries.
    a, b = multipart(b"RIFF"), multipart(b"RIFF")
    assert a.header("content-type") != b.header("content-type")
    assert a.body != b.body
    assert key(a) == key(b)


def test_multipart_boundary_normalized_whatever_the_media_type_case() -> None:
    a, b = multipart(b"RIFF"), multipart(b"RIFF")
    content_type = b.header("content-type")
    assert content_type is not None
    shouted = Request(
        b.method,
        b.url,
        (("content-type", content_type.replace("multipart/form-data", "Multipart/Form-Data")),),
        b.body,
    )
    assert key(a) == key(shouted)


def test_key_is_stable_hex() -> None:
    k = key(post())
    assert k == key(post())
    assert len(k) == 32
    assert int(k, 16) >= 0


@pytest.mark.parametrize(
    ("request_", "options", "expected"),
    [
        pytest.param(
            post(b'{"model":"m","n":1}'),
            KeyOptions(),
            "3a92b53eee345ffd3105eba80d8da283",
            id="json",
        ),
        pytest.param(
            post(b"", (), "https://h.example/v1/models", "get"),
            KeyOptions(),
            "d7165533a06d6df9a16ca046415a4fba",
            id="get-no-body",
        ),
        pytest.param(
            post(b"{}", (*JSON, ("x-api-key", "test-key-one-0123456789")), "https://h.example/v1"),
            KeyOptions(match_api_key=True),
            "17bd9795eadc55e8c31473ee88f026ae",
            id="api-key",
        ),
        pytest.param(
            post(b"{}", url="https://h.example/v1"),
            KeyOptions(match_api_key=True),
            "2b7ee7521da0b5fdaf9262d8deafda1b",
            id="api-key-absent",
        ),
        pytest.param(
            Request(
                "POST",
                "https://h.example/v1?b=2&a=1",
                (
                    ("Accept", "x"),
                    ("accept", "application/json"),
                    ("accept", "text/plain"),
                    ("content-type", "Application/JSON; charset=utf-8"),
                    ("content-type", "text/plain"),
                    ("x-region", "eu"),
                    ("x-region", "us"),
                ),
                b' \r\n{"z":[1.0,{"api_key":"k","b":"\\u00e9"}],"a":0.5}\n',
            ),
            KeyOptions(match_headers=("x-region", "accept", "authorization")),
            "60e06cb6bf3c81009f547b7321f2c46c",
            id="repeated-and-matched-headers",
        ),
        pytest.param(
            post(
                b'{"user":"u","messages":[{"id":1,"c":"x"},{"id":2}]}', url="https://h.example/v1"
            ),
            KeyOptions(ignore_fields=("user", "messages.*.id")),
            "b5a2d5719f1e7d5c2c6fe666e02ffbf4",
            id="ignore-fields",
        ),
        pytest.param(
            post(b'{"a":1} {"b":2}', url="https://h.example/v1", method="PUT"),
            KeyOptions(),
            "6bb827ef3c999e24e37c3c3db03760c2",
            id="json-with-extra-data",
        ),
        pytest.param(
            post(b'{"a":"\xff"}', (), "https://h.example/v1"),
            KeyOptions(),
            "d9878b93beb7bf6fb85111d91fb679b4",
            id="invalid-utf-8",
        ),
    ],
)
def test_key_is_pinned(request_: Request, options: KeyOptions, expected: str) -> None:
    # Cassettes store these keys: a change to the canonical form that does not bump
    # KEY_VERSION (and migrate) would turn every recorded entry into a miss.
    assert request_key(request_, options) == expected


@pytest.mark.parametrize(
    ("headers_a", "headers_b", "match", "equal"),
    [
        pytest.param((("x-region", "eu"),), (("x-region", "us"),), (), True, id="unmatched"),
        pytest.param((("x-region", "eu"),), (("x-region", "us"),), ("x-region",), False, id="on"),
        pytest.param((("x-region", "eu"),), (), ("x-region",), False, id="present-vs-absent"),
        pytest.param(
            (("x-region", "eu"), ("user-agent", "a")),
            (("x-region", "eu"), ("user-agent", "b")),
            ("x-region",),
            True,
            id="others-still-ignored",
        ),
    ],
)
def test_match_headers(
    headers_a: tuple[tuple[str, str], ...],
    headers_b: tuple[tuple[str, str], ...],
    match: tuple[str, ...],
    equal: bool,
) -> None:
    a, b = post(headers=(*JSON, *headers_a)), post(headers=(*JSON, *headers_b))
    assert (key(a, match_headers=match) == key(b, match_headers=match)) is equal


BODY: dict[str, object] = {
    "model": "m",
    "user": "u-1",
    "metadata": {"run": 1, "keep": True},
    "messages": [
        {"role": "system", "content": "s", "id": "x1"},
        {"role": "user", "content": "hi", "id": "x2"},
    ],
}


def _changed(**changes: object) -> dict[str, object]:
    body: dict[str, object] = json.loads(json.dumps(BODY))
    for path, value in changes.items():
        target: object = body
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]  # type: ignore[index]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            assert isinstance(target, dict)
            target[last] = value
    return body


@pytest.mark.parametrize(
    ("ignore", "changed", "equal"),
    [
        pytest.param(("user",), _changed(user="u-2"), True, id="top-level"),
        pytest.param(("user",), _changed(model="n"), False, id="top-level-other-field"),
        pytest.param(("metadata.run",), _changed(metadata__run=2), True, id="nested"),
        pytest.param(("metadata.run",), _changed(metadata__keep=False), False, id="nested-other"),
        pytest.param(("messages.0.id",), _changed(messages__0__id="y"), True, id="list-index"),
        pytest.param(("messages.0.id",), _changed(messages__1__id="y"), False, id="other-index"),
        pytest.param(("messages.1.id",), _changed(messages__0__id="y"), False, id="earlier-index"),
        pytest.param(("messages.1",), _changed(messages__0__id="y"), False, id="earlier-item"),
        pytest.param(("messages.*.id",), _changed(messages__1__id="y"), True, id="star-list"),
        pytest.param(("messages.*.id",), _changed(messages__1__content="y"), False, id="star-o"),
        pytest.param(("*.run",), _changed(metadata__run=5), True, id="star-dict"),
        pytest.param(("messages.1",), _changed(messages__1="anything"), True, id="drop-item"),
        pytest.param(("messages.9.id",), _changed(user="x"), False, id="index-out-of-range"),
        pytest.param(("messages.2.id",), _changed(user="x"), False, id="index-just-past-end"),
        pytest.param(("messages.2",), _changed(user="x"), False, id="item-just-past-end"),
        pytest.param(("nope.deeper",), _changed(user="x"), False, id="missing-path"),
        pytest.param(("user", "metadata"), _changed(user="a", metadata=1), True, id="several"),
    ],
)
def test_ignore_fields(ignore: tuple[str, ...], changed: dict[str, object], equal: bool) -> None:
    assert changed != BODY
    a, b = post(BODY), post(changed)
    assert (key(a, ignore_fields=ignore) == key(b, ignore_fields=ignore)) is equal


def test_ignore_fields_changes_nothing_else_and_leaves_request_alone() -> None:
    request = post(BODY)
    before = request.body
    assert key(request, ignore_fields=("user",)) != key(request)
    assert request.body == before


def test_ignore_fields_on_non_json_body_is_harmless() -> None:
    request = post(b"plain text", headers=(("content-type", "text/plain"),))
    assert key(request, ignore_fields=("a.b",)) == key(request)


API_KEY_ONE = "test-key-one-0123456789"
API_KEY_TWO = "test-key-two-0123456789"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda k: post(headers=(*JSON, ("authorization", f"Bearer {k}"))), id="bearer"
        ),
        pytest.param(lambda k: post(headers=(*JSON, ("x-api-key", k))), id="x-api-key"),
        pytest.param(lambda k: post(headers=(*JSON, ("api-key", k))), id="api-key"),
        pytest.param(lambda k: post(headers=(*JSON, ("x-goog-api-key", k))), id="goog"),
        pytest.param(lambda k: post(url=f"https://g.example/v1/m:generate?key={k}"), id="query"),
    ],
)
def test_match_api_key(make: Callable[[str], Request]) -> None:
    one, two = make(API_KEY_ONE), make(API_KEY_TWO)
    assert key(one) == key(two), "without the opt-in the API key never matters"
    assert key(one, match_api_key=True) != key(two, match_api_key=True)
    assert key(one, match_api_key=True) == key(make(API_KEY_ONE), match_api_key=True)
    assert key(one, match_api_key=True) != key(one)
    for k in (key(one, match_api_key=True), key(two, match_api_key=True)):
        assert API_KEY_ONE not in k
        assert API_KEY_TWO not in k


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://API.example.com/v1/x", "https://api.example.com:443/v1/x"),
        ("http://h.example:8080", "http://h.example:8080/"),
        ("https://h.example/v1?b=2&a=1&a=0", "https://h.example:443/v1?a=0&a=1&b=2"),
        ("https://h.example/v1?key=s3cret&x=1", "https://h.example:443/v1?x=1"),
        ("https://h.example/v1?Api_Key=s3cret", "https://h.example:443/v1"),
        ("https://h.example/v1?flag", "https://h.example:443/v1?flag="),
        ("https://bob:pw-1@h.example/v1", "https://h.example:443/v1"),
        (
            "https://h.example/v1?APIKEY=1&api-key=2&Access_Token=3&TOKEN=4&Sig=5&x=1",
            "https://h.example:443/v1?x=1",
        ),
        (
            "https://s3.example/o?X-Amz-Security-Token=1&X-Amz-Signature=2&X-Amz-Credential=3",
            "https://s3.example:443/o",
        ),
        ("https://h.example/t?client_secret=1&password=2&page=3", "https://h.example:443/t?page=3"),
        # No default port is assumed for other schemes, nor a host for a URL without one.
        ("wss://h.example/v1/realtime", "wss://h.example:0/v1/realtime"),
        ("unix:///var/run/api.sock", "unix://:0/var/run/api.sock"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/form-data; boundary=abc", "multipart/form-data"),
        ("Application/JSON ; charset=utf-8", "application/json"),
        ("text/plain", "text/plain"),
        ("multipart/form-data; boundary=abc; charset=utf-8", "multipart/form-data"),
    ],
)
def test_media_type(content_type: str, expected: str) -> None:
    assert media_type(content_type) == expected


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(b"", "application/json", b"", id="empty"),
        pytest.param(b'{"b":1, "a":2}', None, b'{"a":2,"b":1}', id="object-untyped"),
        pytest.param(b'[{"b":1, "a":2}]', "text/plain", b'[{"a":2,"b":1}]', id="array-as-text"),
        pytest.param(b' {"b":1,\n"a":2}', "application/json", b'{"a":2,"b":1}', id="json-type"),
        pytest.param(b"1.0", "application/vnd.api+json", b"1", id="json-number"),
        pytest.param(b"1.0", "text/plain", b"1.0", id="number-as-text"),
        pytest.param(b"hello", None, b"hello", id="plain"),
        pytest.param(b"{not json", "application/json", b"{not json", id="broken-json"),
        pytest.param(
            b'{"b":"\xed\xa0\xbd", "a":1}',
            "application/json",
            b'{"a":1,"b":"\xed\xa0\xbd"}',
            id="raw-lone-surrogate",
        ),
        pytest.param(
            b'{"api_key":"k-1","n":1}',
            "application/json",
            b'{"api_key":"<redacted>","n":1}',
            id="credential-field",
        ),
        pytest.param(
            b'\r\n\t {"b":1}\r\n\t ', "application/json", b'{"b":1}', id="json-whitespace-around"
        ),
        pytest.param(b'{"a":1} {"b":2}', None, b'{"a":1} {"b":2}', id="extra-value"),
        pytest.param(b'{"a":1} x', None, b'{"a":1} x', id="extra-text"),
        # Vertical tab and no-break space are whitespace to Python, not to JSON.
        pytest.param(
            b'\x0b{"b":1}', "application/json", b'\x0b{"b":1}', id="not-json-space-before"
        ),
        pytest.param(b'{"b":1}\xc2\xa0', None, b'{"b":1}\xc2\xa0', id="not-json-space-after"),
        pytest.param(b" \n ", "application/json", b" \n ", id="json-type-only-whitespace"),
        pytest.param(b"{", "application/json", b"{", id="unclosed"),
        pytest.param(b'{"a":"\xff"}', None, b'{"a":"\xff"}', id="invalid-utf-8"),
    ],
)
def test_canonical_body(body: bytes, content_type: str | None, expected: bytes) -> None:
    headers = () if content_type is None else (("content-type", content_type),)
    assert canonical_body(Request("POST", URL, headers, body)) == expected


def test_the_first_of_repeated_headers_counts() -> None:
    accept, plain = ("accept", "application/json"), ("accept", "text/plain")
    assert key(post(headers=(*JSON, accept, plain))) == key(post(headers=(*JSON, accept)))
    assert key(post(headers=(*JSON, accept, plain))) != key(post(headers=(*JSON, plain, accept)))
    # The first content type also says how the body is read: here as text, not JSON.
    types = (("content-type", "text/plain"), ("content-type", "application/json"))
    assert key(post(b"1.0", types)) != key(post(b"1", types))


JSON_VALUES = [
    {"b": [1, 2.5, 1e300, float("inf"), float("-inf"), None, True], "a": 'é\ud83d"\n', "A": {}},
    [{"z": 0, "y": [[], {}]}],
    "text",
    1.5,
]


@pytest.mark.parametrize("value", JSON_VALUES)
@pytest.mark.parametrize("c", [True, False], ids=["c-encoder", "without-c-encoder"])
def test_json_written_as_json_dumps_writes_it(value: object, c: bool) -> None:
    make = getattr(json.encoder, "c_make_encoder", None) if c else None
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert _jsontext._encoder(_key._ENCODER, make)(value) == expected


def test_the_c_encoder_is_used_where_there_is_one() -> None:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        pytest.skip("no C encoder in this Python")
    assert _key._encode is not _key._ENCODER.encode


def test_json_with_lone_surrogate_escape_has_a_key() -> None:
    # A JSON string may escape half a surrogate pair; the key must not crash on it.
    a = post(b'{"content":"\\ud83d"}')
    b = post(b'{"content": "\\ud83d"}')
    assert key(a) == key(b)
    assert key(a) != key(post(b'{"content":"\\ud83e"}'))


def test_a_mixed_case_multipart_boundary_is_normalized() -> None:
    def upload(boundary: str) -> Request:
        body = (
            f'--{boundary}\r\ncontent-disposition: form-data; name="f"\r\n\r\nabc\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        content_type = f"multipart/form-data; boundary={boundary}"
        return Request("POST", "http://x/upload", (("content-type", content_type),), body)

    assert request_key(upload("WebKitFormBoundaryAbC123")) == request_key(
        upload("WebKitFormBoundaryXyZ789")
    )


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        pytest.param("multipart/form-data;boundary={}", "b-1", id="no-space"),
        # Edge characters a looser unquoting would eat too.
        pytest.param('multipart/form-data; boundary="{}"', "Xb=1X", id="quoted-with-equals"),
        pytest.param("multipart/form-data; charset=utf-8; boundary={}", "b-1", id="second-param"),
        pytest.param("multipart/mixed; BOUNDARY={}", "b-1", id="name-case"),
    ],
)
def test_multipart_boundary_found_in_any_spelling(content_type: str, boundary: str) -> None:
    def upload(boundary: str) -> Request:
        body = (
            f'--{boundary}\r\ncontent-disposition: form-data; name="f"\r\n\r\nutf-8\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        return Request(
            "POST", "http://x/upload", (("content-type", content_type.format(boundary)),), body
        )

    other = boundary.replace("1", "2")
    assert upload(boundary).body != upload(other).body
    assert request_key(upload(boundary)) == request_key(upload(other))
    assert canonical_body(upload(boundary)) == canonical_body(upload(other))
    assert canonical_body(upload(boundary)).startswith(b"--BOUNDARY\r\n")


@pytest.mark.parametrize(
    ("one", "two"),
    [
        pytest.param(
            post({**CHAT, "api_key": "first-credential-1"}),
            post({**CHAT, "api_key": "second-credential-2"}),
            id="json-top",
        ),
        pytest.param(
            post({**CHAT, "auth": {"clientSecret": "a-1", "Password": "b-1"}}),
            post({**CHAT, "auth": {"clientSecret": "a-2", "Password": "b-2"}}),
            id="json-nested-any-spelling",
        ),
        pytest.param(
            post({**CHAT, "tools": [{"x": {"access_token": "t-1"}}]}),
            post({**CHAT, "tools": [{"x": {"access_token": "t-2"}}]}),
            id="json-in-list",
        ),
        pytest.param(
            post(url=URL + "?key=first-1"),
            post(url="https://u:p@" + URL[8:] + "?key=2"),
            id="url-credentials",
        ),
        pytest.param(
            post(headers=(*JSON, ("x-custom-token", "one"))),
            post(headers=(*JSON, ("x-custom-token", "two"))),
            id="credential-header",
        ),
    ],
)
def test_credentials_are_left_out_of_the_key(one: Request, two: Request) -> None:
    assert key(one) == key(two)
    # Even a credential header listed in match_headers stays out.
    assert key(one, match_headers=("x-custom-token",)) == key(
        two, match_headers=("x-custom-token",)
    )


@pytest.mark.parametrize(
    ("one", "two"),
    [
        pytest.param(post({**CHAT, "max_tokens": 1}), post({**CHAT, "max_tokens": 2}), id="max"),
        pytest.param(post({**CHAT, "key": "a"}), post({**CHAT, "key": "b"}), id="key-alone"),
        pytest.param(
            post({**CHAT, "page_token": "a"}), post({**CHAT, "page_token": "b"}), id="page-token"
        ),
    ],
)
def test_fields_that_look_like_credentials_but_are_not_stay_in_the_key(
    one: Request, two: Request
) -> None:
    assert key(one) != key(two)


def form(secret: str, model: str = "whisper-1") -> Request:
    request = httpx.Request(
        "POST",
        "https://api.openai.com/v1/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF")},
        data={"model": model, "client_secret": secret},
    )
    return from_httpx(request)


def test_multipart_credential_fields_are_left_out_of_the_key() -> None:
    assert key(form("first-form-secret")) == key(form("other-form-secret"))
    assert key(form("first-form-secret")) != key(form("first-form-secret", model="other"))
    assert b"first-form-secret" not in canonical_body(form("first-form-secret"))


def test_a_python_without_its_own_sha256_hashes_with_openssl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (A module set to None in sys.modules cannot be imported.)
    monkeypatch.setitem(sys.modules, "_sha2", None)
    monkeypatch.setitem(sys.modules, "_sha256", None)
    assert _key._builtin_sha256() is hashlib.sha256
    monkeypatch.undo()
    own = _key._builtin_sha256()
    # CPython's own build of it (a build may leave it out, as none of ours does).
    assert own is not hashlib.sha256 or sys.implementation.name != "cpython"
    for data in (b"", b"x", bytes(range(256)) * 9):
        assert own(data).hexdigest() == hashlib.sha256(data).hexdigest()
