"""A live exchange turned into an entry: what is stored of each header and body, and what a
refusal says. Direct calls, no plugin run; the key-shaped strings here are fakes."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_llmcache._capture import (
    CACHE_STATUS_HEADER,
    SecretFound,
    is_transient,
    make_entry,
    refusal_help,
    replay_headers,
)
from pytest_llmcache._entry import Entry
from pytest_llmcache._exchange import Headers, Request
from pytest_llmcache._secrets import REDACTED

NOW = datetime(2024, 5, 1, 9, 8, 7, 654321, tzinfo=timezone.utc)
URL = "https://api.example.com/v1/chat"
JSON: Headers = (("content-type", "application/json"),)
EXAMPLE_A = "sk-proj-EXAMPLE" + "0123456789abcdefghij"
EXAMPLE_B = "AIza" + "EXAMPLE0123456789abcdefghijklmnopq"


def record(
    request: Request | None = None,
    headers: Headers = JSON,
    chunks: tuple[bytes, ...] = (b'{"ok":true}',),
    **options: Any,
) -> Entry:
    return make_entry(
        key="k" * 32,
        request=request or Request("POST", URL, JSON, b'{"model":"m"}'),
        status=options.pop("status", 200),
        headers=headers,
        chunks=chunks,
        match_headers=options.pop("match_headers", ()),
        ttl=options.pop("ttl", None),
        duration=options.pop("duration", 0.5),
        now=NOW,
        secrets=options.pop("secrets", ()),
        **options,
    )


@pytest.mark.parametrize(
    ("headers", "stored"),
    [
        pytest.param(
            (("x-a", "1"), ("x-b", "2"), ("x-a", "3")), {"x-a": "1, 3", "x-b": "2"}, id="repeated"
        ),
        pytest.param(
            (
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "close"),
                ("upgrade", "h2c"),
                ("te", "trailers"),
                ("x-kept", "yes"),
            ),
            {"x-kept": "yes"},
            id="hop-by-hop",
        ),
        pytest.param(
            ((CACHE_STATUS_HEADER, "MISS"), ("content-length", "11"), ("transfer-encoding", "x")),
            {},
            id="framing-and-cache-status",
        ),
        pytest.param(
            (("content-encoding", "identity"),), {}, id="encoding-of-a-decoded-body-dropped"
        ),
        pytest.param((("content-encoding", ""),), {}, id="empty-encoding-dropped"),
    ],
)
def test_stored_response_headers(headers: Headers, stored: dict[str, str]) -> None:
    assert record(headers=headers).response["headers"] == stored


def test_empty_chunks_of_a_stream_are_not_stored() -> None:
    chunks = (b"data: 1\n\n", b"", b"data: 2\n\n", b"")
    made = record(headers=(("content-type", "text/event-stream"),), chunks=chunks)
    assert made.response["body"] == {"chunks": [{"sse": [{"data": "1"}]}, {"sse": [{"data": "2"}]}]}


def test_a_body_in_several_chunks_is_stored_whole() -> None:
    made = record(chunks=(b'{"a":', b"1}"))
    assert made.response["body"] == {"json": {"a": 1}}


def test_the_entry_holds_what_it_was_given() -> None:
    made = record(status=201, ttl=60.0, duration=0.12345, test="t.py::test_x", cut_short=True)
    assert (made.key, made.recorded_at, made.ttl, made.duration) == (
        "k" * 32,
        "2024-05-01T09:08:07Z",
        60.0,
        0.123,
    )
    assert (made.test, made.cut_short, made.allow_secrets) == ("t.py::test_x", True, ())
    assert made.response["status"] == 201
    assert made.request["method"] == "POST"
    assert (record().test, record().cut_short) == (None, False)


@pytest.mark.parametrize(
    ("headers", "match", "stored"),
    [
        pytest.param(
            (("content-type", "Multipart/Form-Data; boundary=xyz"),),
            (),
            {"content-type": "multipart/form-data"},
            id="multipart-without-boundary",
        ),
        pytest.param(
            (("content-type", "application/json; charset=utf-8"), ("accept", "*/*")),
            (),
            {"content-type": "application/json; charset=utf-8", "accept": "*/*"},
            id="others-as-sent",
        ),
        pytest.param(
            (("x-region", "eu"), ("x-other", "1"), ("x-api-key", "k")),
            ("x-region", "x-missing", "x-api-key"),
            {"x-region": "eu"},
            id="matched",
        ),
    ],
)
def test_stored_request_headers(
    headers: Headers, match: tuple[str, ...], stored: dict[str, str]
) -> None:
    made = record(Request("post", URL, headers, b""), match_headers=match)
    assert made.request["headers"] == stored
    assert made.request["method"] == "POST"


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        pytest.param(
            b'{"password":"pw-123456","n":1}', {"json": {"password": REDACTED, "n": 1}}, id="json"
        ),
        pytest.param(
            ' {"password":"pw-123456", "msg":"é"}'.encode(),
            {"json": {"password": REDACTED, "msg": "é"}},
            id="json-as-text",
        ),
        pytest.param(
            b'\n[{"token":"tok-123456"}]', {"json": [{"token": REDACTED}]}, id="array-as-text"
        ),
        pytest.param(b' {"msg":"x"}', {"text": ' {"msg":"x"}'}, id="no-credential-as-sent"),
        pytest.param(b"{not json", {"text": "{not json"}, id="not-json"),
        pytest.param(b"password=pw-1", {"text": "password=pw-1"}, id="not-json-at-all"),
        pytest.param(b"", {}, id="empty"),
        pytest.param(
            b' {"password":"pw-123456", "s":"\\ud83d"}',
            {"base64": base64.b64encode(b'{"password":"<redacted>","s":"\xed\xa0\xbd"}').decode()},
            id="json-as-text-with-half-a-surrogate-pair",
        ),
    ],
)
def test_stored_request_body(body: bytes, stored: dict[str, Any]) -> None:
    made = record(Request("POST", URL, (("content-type", "text/plain"),), body))
    assert made.request["body"] == stored


def test_the_patterns_needed_are_listed_once_in_the_order_found() -> None:
    answer = json.dumps({"a": EXAMPLE_B, "b": EXAMPLE_A, "c": EXAMPLE_B}).encode()
    made = record(chunks=(answer,), allow_secrets=("sk-proj-*", "AIza*", "unused*"))
    assert made.allow_secrets == ("AIza*", "sk-proj-*")


def test_a_value_no_pattern_allows_is_refused_even_beside_allowed_ones() -> None:
    answer = json.dumps({"a": EXAMPLE_A, "b": EXAMPLE_B}).encode()
    with pytest.raises(SecretFound) as info:
        record(chunks=(answer,), allow_secrets=("sk-proj-*",))
    assert (info.value.path, info.value.masked) == ("response.body.json.b", "AIzaEX...")


def test_refusal_help() -> None:
    found = SecretFound("response.body.json.b", "AIzaEX...")
    assert str(found) == "response.body.json.b"
    assert refusal_help(found) == (
        "  where: response.body.json.b\n"
        "  value: AIzaEX... (shaped like an API key; the rest is not shown)\n"
        "  a real key: keep it out of what the test sends and receives.\n"
        "  not a key (an example in an answer, a test fixture): allow it by its value or a\n"
        "  '*' pattern that fits only such values, on the test:\n"
        '    @pytest.mark.llm_cache(allow_secrets=["sk-proj-EXAMPLE*"])\n'
        "  or for the whole suite, in the ini file ([pytest] or [tool.pytest.ini_options]):\n"
        "    llm_cache_allow_secrets = sk-proj-EXAMPLE*"
    )


@pytest.mark.parametrize(
    ("status", "transient"),
    [(200, False), (428, False), (429, True), (430, False), (499, False), (500, True)],
)
def test_is_transient(status: int, transient: bool) -> None:
    assert is_transient(status) is transient


def test_replay_headers_keep_order_and_repeats() -> None:
    stored: Headers = (
        ("x-a", "1"),
        ("content-length", "5"),
        ("x-a", "2"),
        ("transfer-encoding", "chunked"),
        ("content-encoding", "br"),
    )
    assert replay_headers(stored, "HIT") == [
        ("x-a", "1"),
        ("x-a", "2"),
        ("content-encoding", "br"),
        (CACHE_STATUS_HEADER, "HIT"),
    ]
    assert CACHE_STATUS_HEADER == "x-llm-cache-status"
