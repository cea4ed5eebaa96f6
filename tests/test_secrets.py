"""Nothing secret reaches a cassette (SPEC §6). The key-shaped strings here are fakes."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import zlib
from datetime import datetime, timezone

import httpx
import pytest

from pytest_llmcache._body import decode_body
from pytest_llmcache._capture import (
    CACHE_STATUS_HEADER,
    SecretFound,
    is_transient,
    make_entry,
    refusal_help,
    replay_headers,
)
from pytest_llmcache._cassette import Entry
from pytest_llmcache._exchange import Headers, Request
from pytest_llmcache._secrets import (
    REDACTED,
    allowed_by,
    credentials,
    find_key_shape,
    is_secret_field,
    is_secret_header,
    is_secret_param,
    is_secret_request_header,
    mask_secrets,
    multipart_boundary,
    redact_fields,
    redact_multipart,
    redact_url,
    scrub,
    stored_url,
    unredacted_fields,
)

FAKE_OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
FAKE_ANTHROPIC = "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt" * 2
FAKE_GOOGLE = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p"
FAKE_GROQ = "gsk_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"
FAKE_AWS = "AKIA" + "IOSFODNN7EXAMPLE"
NOW = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "secrets", "expected"),
    [
        pytest.param("Bearer tok-12345678", ["tok-12345678"], "Bearer <redacted>", id="str"),
        pytest.param(
            {"a": [{"b": "x tok-12345678 y"}, "tok-12345678"], "n": 3, "f": None},
            ["tok-12345678"],
            {"a": [{"b": "x <redacted> y"}, "<redacted>"], "n": 3, "f": None},
            id="nested",
        ),
        pytest.param(
            {"tok-12345678": "key"}, ["tok-12345678"], {"<redacted>": "key"}, id="dict-key"
        ),
        pytest.param(
            "long-secret-123 and long-secret",
            ["long-secret", "long-secret-123"],
            "<redacted> and <redacted>",
            id="longest-first",
        ),
        pytest.param(
            "a=tok-12345678&b=tok-12345678", {"tok-12345678"}, "a=<redacted>&b=<redacted>", id="all"
        ),
        pytest.param(
            "x a-secret-1 y", ["secret-1", "a-secret-1"], "x <redacted> y", id="longest-sorts-first"
        ),
        pytest.param({"a": 1.5, "b": True}, ["1.5"], {"a": 1.5, "b": True}, id="non-strings"),
        pytest.param({"a": "nothing here"}, [], {"a": "nothing here"}, id="no-secrets"),
    ],
)
def test_scrub(value: object, secrets: list[str], expected: object) -> None:
    original = json.dumps(value, sort_keys=True)
    assert scrub(value, secrets) == expected
    assert json.dumps(value, sort_keys=True) == original, "the input is not changed"


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            Request("POST", "https://h/v1", (("authorization", "Bearer tok-12345678"),), b""),
            {"Bearer tok-12345678", "tok-12345678"},
            id="bearer",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (("x-api-key", "tok-12345678"),), b""),
            {"tok-12345678"},
            id="x-api-key",
        ),
        pytest.param(
            Request("GET", "https://h/v1?key=tok-12345678&q=1&sig=sig-12345678", (), b""),
            {"tok-12345678", "sig-12345678"},
            id="query",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (("cookie", "session=abcdefgh12"),), b""),
            {"session=abcdefgh12", "abcdefgh12"},
            id="cookie",
        ),
        pytest.param(
            Request("POST", "https://h/v1?key=short", (("x-api-key", "tiny"),), b""),
            set(),
            id="too-short-to-scrub",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (("user-agent", "OpenAI/Python 1.2.3"),), b""),
            set(),
            id="not-secret",
        ),
    ],
)
def test_credentials(request_: Request, expected: set[str]) -> None:
    assert credentials(request_) == expected


BASIC = "Basic " + base64.b64encode(b"alice-user:hunter2-password").decode()
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE0123/20240501/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef0123456789abcdef"
)
BASIC_COLON = "Basic " + base64.b64encode(b"alice-user:pass:word-22").decode()
# Valid base64 once the "*" is dropped: a lenient decoder would find user and password in it.
NOT_BASE64 = "Basic " + "dXNl*ci1uYW1lOnBhc3Mtd29yZA=="
FORM = (
    b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="client_secret"\r\n\r\nform-secret-9876'
    b"\r\n--XyZ--\r\n"
)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param(
            Request("GET", "https://user-name-1:pass-word-22@h/v1", (), b""),
            {"user-name-1", "pass-word-22"},
            id="userinfo",
        ),
        pytest.param(
            Request("GET", "https://h/v1?API_KEY=a%2Fb-c%2Fd-eeee&Token=tok-value-123", (), b""),
            {"a/b-c/d-eeee", "a%2Fb-c%2Fd-eeee", "tok-value-123"},
            id="query-any-case-and-encoded",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (("authorization", BASIC),), b""),
            {BASIC, BASIC[6:], "alice-user:hunter2-password", "alice-user", "hunter2-password"},
            id="basic",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (("authorization", SIGV4),), b""),
            {SIGV4, "AKIDEXAMPLE0123", "0123456789abcdef0123456789abcdef"},
            id="sigv4",
        ),
        pytest.param(
            Request(
                "POST",
                "https://h/v1",
                (
                    ("ocp-apim-subscription-key", "azure-sub-key-1"),
                    ("x-custom-auth", "custom-auth-22"),
                    ("x-session-id", "session-id-333"),
                    ("x-ratelimit-tokens", "100000000"),
                ),
                b"",
            ),
            {"azure-sub-key-1", "custom-auth-22", "session-id-333", "100000000"},
            id="headers-by-name",
        ),
        pytest.param(
            Request(
                "POST",
                "https://h/v1",
                (("content-type", "application/json"),),
                b'{"a":[{"apiKey":"json-api-key-1","max_tokens":12345678}],"password":"pw"}',
            ),
            {"json-api-key-1"},
            id="json-fields",
        ),
        pytest.param(
            Request(
                "POST",
                "https://h/v1",
                (("content-type", "multipart/form-data; boundary=XyZ"),),
                FORM,
            ),
            {"form-secret-9876"},
            id="multipart-fields",
        ),
        pytest.param(
            Request(
                "POST",
                "https://h/v1",
                (("content-type", "text/plain"),),
                b' {"a":[{"apiKey":"untyped-key-1"}]}',
            ),
            {"untyped-key-1"},
            id="json-fields-untyped",
        ),
        pytest.param(
            Request("POST", "https://h/v1", (), b"api_key=not-json-123"),
            set(),
            id="plain-body",
        ),
        pytest.param(
            Request("GET", "https://h/v1?key=a%2Fb%20c-secret", (), b""),
            {"a/b c-secret", "a%2Fb%20c-secret", "a%2Fb+c-secret"},
            id="query-each-escaping",
        ),
        pytest.param(
            Request("GET", "https://h/v1", (("x-api-key", "8-chars!"),), b""),
            {"8-chars!"},
            id="just-long-enough",
        ),
        pytest.param(
            Request(
                "GET",
                "https://h/v1",
                (
                    ("authorization", "Token tok-12345678"),
                    ("proxy-authorization", "ApiKey apikey-1234"),
                    ("x-goog-api-key", "KEY key-12345678"),
                ),
                b"",
            ),
            {
                "Token tok-12345678",
                "tok-12345678",
                "ApiKey apikey-1234",
                "apikey-1234",
                "KEY key-12345678",
                "key-12345678",
            },
            id="schemes",
        ),
        pytest.param(
            Request("GET", "https://h/v1", (("authorization", BASIC_COLON),), b""),
            {
                BASIC_COLON,
                BASIC_COLON[6:],
                "alice-user:pass:word-22",
                "alice-user",
                "pass:word-22",
            },
            id="basic-colon-in-password",
        ),
        pytest.param(
            Request("GET", "https://h/v1", (("authorization", NOT_BASE64),), b""),
            {NOT_BASE64, NOT_BASE64[6:]},
            id="basic-not-base64",
        ),
        pytest.param(
            Request("GET", "https://h/v1", (("cookie", "a=first-cookie-1;b=abc=def12345"),), b""),
            {"a=first-cookie-1;b=abc=def12345", "first-cookie-1", "abc=def12345"},
            id="cookies",
        ),
    ],
)
def test_credentials_beyond_headers(request_: Request, expected: set[str]) -> None:
    assert credentials(request_) == expected


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("apiKey", True),
        ("API-KEY", True),
        ("openai_api_key", True),
        ("access_token", True),
        ("accessToken", True),
        ("refresh_token", True),
        ("client_secret", True),
        ("clientSecret", True),
        ("password", True),
        ("db_password", True),
        ("secret", True),
        ("token", True),
        ("private_key", True),
        ("privateKey", True),
        ("aws_secret_access_key", True),
        ("session_token", True),
        ("authorization", True),
        ("credentials", True),
        ("max_tokens", False),
        ("prompt_tokens", False),
        ("completion_tokens", False),
        ("tokens", False),
        ("max_output_tokens", False),
        ("token_count", False),
        ("key", False),
        ("keywords", False),
        ("page_token", False),
        ("signature", False),
        ("model", False),
        ("messages", False),
    ],
)
def test_is_secret_field(name: str, secret: bool) -> None:
    assert is_secret_field(name) is secret


@pytest.mark.parametrize(
    ("name", "request_secret", "response_secret"),
    [
        ("authorization", True, True),
        ("ocp-apim-subscription-key", True, True),
        ("set-cookie", True, True),
        ("x-custom-api-key", True, False),
        ("x-auth", True, False),
        ("x-session-id", True, False),
        ("x-client-secret", True, False),
        ("x-goog-signature", True, False),
        ("x-credential", True, False),
        ("x-db-password", True, False),
        ("x-ratelimit-remaining-tokens", True, False),
        ("content-type", False, False),
        ("accept", False, False),
        ("openai-beta", False, False),
        ("user-agent", False, False),
    ],
)
def test_secret_header_names(name: str, request_secret: bool, response_secret: bool) -> None:
    assert is_secret_request_header(name) is request_secret
    assert is_secret_header(name) is response_secret


@pytest.mark.parametrize(
    "name",
    [
        "key",
        "api_key",
        "apikey",
        "api-key",
        "access_token",
        "token",
        "sig",
        "signature",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-credential",
        "client_secret",
        "password",
    ],
)
def test_secret_query_params_any_case(name: str) -> None:
    for spelled in (name, name.upper(), name.title()):
        assert is_secret_param(spelled)
        url = f"https://u:p@h/v1?alt=sse&{spelled}=query-secret-1"
        assert stored_url(url) == "https://h/v1?alt=sse"
        assert redact_url(url) == f"https://h/v1?alt=sse&{spelled}=<redacted>"
    assert not is_secret_param("alt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "GET https://bob:pw-123456@api.x.com/v1?key=abc&q=1 failed",
            "GET https://api.x.com/v1?key=<redacted>&q=1 failed",
            id="url-in-text",
        ),
        pytest.param(
            f"the answer holds {FAKE_OPENAI}.", "the answer holds sk-pro....", id="key-shape"
        ),
        pytest.param(
            "test_x[https://u:secret-pass@h/p]", "test_x[https://h/p]", id="url-in-node-id"
        ),
        pytest.param(
            "GET https://h/v1?key=<redacted>", "GET https://h/v1?key=<redacted>", id="idempotent"
        ),
        pytest.param("nothing to hide", "nothing to hide", id="plain"),
    ],
)
def test_mask_secrets(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected
    assert mask_secrets(expected) == expected


@pytest.mark.parametrize(
    "key",
    [
        "sk-ant-api03-" + "a1B2" * 6,
        "sk-proj-" + "Zz9_" * 6,
        "AIza" + "Sy0-" * 9,
        "gsk_" + "q7W" * 8,
        "AKIA" + "Q2W3E4R5T6Y7U8I9",
    ],
)
def test_every_key_shape_is_masked_in_a_message(key: str) -> None:
    masked = mask_secrets(f"failed: bad token {key} (POST /v1)")
    assert masked == f"failed: bad token {key[:6]}... (POST /v1)"


@pytest.mark.parametrize(
    ("value", "patterns", "expected"),
    [
        ("sk-proj-EXAMPLE0123456789abcdef", ["sk-proj-EXAMPLE*"], "sk-proj-EXAMPLE*"),
        (
            "sk-proj-EXAMPLE0123456789abcdef",
            ["sk-proj-EXAMPLE0123456789abcdef"],
            "sk-proj-EXAMPLE0123456789abcdef",
        ),
        ("sk-proj-REAL0123456789abcdefgh", ["sk-proj-EXAMPLE*"], None),
        ("AKIAIOSFODNN7EXAMPLE", ["*EXAMPLE"], "*EXAMPLE"),
        ("sk-a?b", ["sk-a?b"], "sk-a?b"),
        ("sk-aXb", ["sk-a?b"], None),
    ],
)
def test_allowed_by(value: str, patterns: list[str], expected: str | None) -> None:
    assert allowed_by(value, patterns) == expected


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param(FAKE_OPENAI, ".", id="openai"),
        pytest.param(f"key is {FAKE_ANTHROPIC}.", ".", id="anthropic"),
        pytest.param({"a": {"b": [1, {"c": FAKE_GOOGLE}]}}, "a.b[1].c", id="google-nested"),
        pytest.param({"x": "ok", "headers": {"x-key": FAKE_GROQ}}, "headers.x-key", id="groq"),
        pytest.param([{"aws": f"id={FAKE_AWS}"}], "[0].aws", id="aws"),
        pytest.param({FAKE_OPENAI: "as a key"}, ".", id="dict-key-at-top"),
        pytest.param({"d": {FAKE_OPENAI: 1}}, "d", id="dict-key-nested"),
        pytest.param(f"Bearer {FAKE_OPENAI}", ".", id="bearer"),
        pytest.param(f'"api_key":"{FAKE_OPENAI}"', ".", id="quoted"),
        pytest.param("sk-" + "x" * 48, ".", id="legacy-openai"),
        pytest.param(f"https%3A%2F%2Fh%3Fkey%3D{FAKE_OPENAI}", ".", id="url-encoded"),
        pytest.param(f"first line\\n{FAKE_OPENAI}", ".", id="after-escaped-newline"),
        pytest.param(f"line\n{FAKE_AWS}", ".", id="after-newline"),
    ],
)
def test_find_key_shape(value: object, path: str) -> None:
    assert find_key_shape(value) == path


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sk-short", id="short"),
        pytest.param("task-management-system-design-doc", id="word-ending-in-sk"),
        pytest.param("see docs/risk-assessment-for-the-whole-team.md", id="slug"),
        pytest.param({"model": "gpt-4o-mini", "id": "chatcmpl-AbCdEf0123456789xyzXYZ"}, id="ids"),
        pytest.param("akiaiosfodnn7example", id="aws-lowercase"),
        pytest.param("x" + FAKE_OPENAI, id="inside-a-word"),
        pytest.param(["AIza-short", 12, None, True], id="short-google"),
        pytest.param(REDACTED, id="redacted"),
    ],
)
def test_no_key_shape(value: object) -> None:
    assert find_key_shape(value) is None


# -- make_entry ------------------------------------------------------------------------------

URL = "https://api.openai.com/v1/chat/completions"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
API_KEY = "test-key-" + "0123456789abcdef"
REQUEST = Request(
    "POST",
    URL,
    (
        ("authorization", f"Bearer {API_KEY}"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.0"),
        ("x-stainless-retry-count", "0"),
        ("openai-organization", "org-secret123"),
        ("cookie", "session=abcdefgh12"),
        ("x-region", "eu"),
    ),
    BODY,
)
COMPLETION = (
    b'{"id":"chatcmpl-1","choices":[{"message":{"content":"Hello"}}],"usage":{"total_tokens":9}}'
)
RESPONSE_HEADERS: Headers = (
    ("content-type", "application/json"),
    ("x-request-id", "req_123"),
    ("openai-processing-ms", "120"),
    ("set-cookie", "__cf_bm=abc; path=/"),
    ("set-cookie", "_cfuvid=def; path=/"),
    ("openai-organization", "org-secret123"),
    ("anthropic-organization-id", "0000-1111"),
    ("authorization", "echo"),
    ("content-length", "999"),
    ("transfer-encoding", "chunked"),
    ("connection", "keep-alive"),
    (CACHE_STATUS_HEADER, "MISS"),
)


def entry(
    chunks: list[bytes] | None = None,
    headers: Headers = RESPONSE_HEADERS,
    request: Request = REQUEST,
    secrets: frozenset[str] | None = None,
    match_headers: tuple[str, ...] = (),
    status: int = 200,
) -> Entry:
    return make_entry(
        key="k" * 32,
        request=request,
        status=status,
        headers=headers,
        chunks=[COMPLETION] if chunks is None else chunks,
        match_headers=match_headers,
        ttl=3600.0,
        duration=1.23456,
        now=NOW,
        secrets=credentials(request) if secrets is None else secrets,
    )


def test_entry_fields() -> None:
    made = entry()
    assert made.key == "k" * 32
    assert made.recorded_at == "2024-05-01T12:30:45Z"
    assert made.ttl == 3600.0
    assert made.duration == 1.235
    assert made.response["status"] == 200
    assert made.response["body"] == {"json": json.loads(COMPLETION)}
    assert made.to_response().body == COMPLETION


def test_response_headers_dropped_and_kept() -> None:
    stored = entry().response["headers"]
    assert stored == {
        "content-type": "application/json",
        "x-request-id": "req_123",
        "openai-processing-ms": "120",
    }


@pytest.mark.parametrize(
    "name",
    [
        "set-cookie",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "authorization",
        "x-api-key",
        "content-encoding",
        "content-length",
        "transfer-encoding",
        "keep-alive",
    ],
)
def test_each_dropped_response_header(name: str) -> None:
    value = "gzip" if name == "content-encoding" else "v-1"
    chunks = [gzip.compress(COMPLETION)] if name == "content-encoding" else [COMPLETION]
    made = entry(chunks, headers=(("content-type", "application/json"), (name, value)))
    assert made.response["headers"] == {"content-type": "application/json"}
    assert made.to_response().body == COMPLETION


def test_stored_request_holds_no_credentials() -> None:
    made = entry(match_headers=("x-region", "authorization", "cookie"))
    assert made.request == {
        "method": "POST",
        "url": URL,
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "x-region": "eu",
        },
        "body": {"json": json.loads(BODY)},
    }
    text = json.dumps(made.to_data())
    for secret in (API_KEY, "org-secret123", "abcdefgh12", "__cf_bm", "0000-1111"):
        assert secret not in text


def test_secret_query_parameters_are_redacted() -> None:
    request = Request(
        "POST",
        "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent"
        "?alt=sse&key=plain-google-key-123",
        (("content-type", "application/json"),),
        b"{}",
    )
    made = entry(request=request)
    assert made.request["url"].endswith(":generateContent?alt=sse")
    assert "plain-google-key-123" not in json.dumps(made.to_data())


def test_credentials_echoed_anywhere_are_scrubbed() -> None:
    echoed = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {API_KEY}", "param": None}},
        separators=(",", ":"),
    ).encode()
    made = entry(
        [echoed],
        headers=(("content-type", "application/json"), ("x-debug", f"key={API_KEY}")),
        status=401,
    )
    assert API_KEY not in json.dumps(made.to_data())
    assert made.response["headers"]["x-debug"] == f"key={REDACTED}"
    assert made.response["body"]["json"]["error"]["message"].endswith(REDACTED)
    assert made.response["status"] == 401


@pytest.mark.parametrize(
    ("chunks", "content_type", "path"),
    [
        pytest.param(
            [b'{"data":[{"value":"' + FAKE_OPENAI.encode() + b'"}]}'],
            "application/json",
            "response.body.json.data[0].value",
            id="json",
        ),
        pytest.param(
            [b"your key: " + FAKE_ANTHROPIC.encode()], "text/plain", "response.body.text", id="text"
        ),
        pytest.param(
            [b"data: {}\n\n", b'data: {"k":"' + FAKE_GROQ.encode() + b'"}\n\n'],
            "text/event-stream",
            "response.body.chunks[1].sse[0].data.k",
            id="stream",
        ),
    ],
)
def test_key_shaped_value_in_response_is_refused(
    chunks: list[bytes], content_type: str, path: str
) -> None:
    with pytest.raises(SecretFound) as info:
        entry(chunks, headers=(("content-type", content_type),))
    assert str(info.value) == path
    assert FAKE_OPENAI not in str(info.value)


def test_key_shaped_value_in_response_header_is_refused() -> None:
    with pytest.raises(SecretFound, match=r"^response\.headers\.x-echo$"):
        entry(headers=(("content-type", "application/json"), ("x-echo", FAKE_AWS)))


def test_key_shaped_value_already_scrubbed_is_fine() -> None:
    request = Request("POST", URL, (("authorization", f"Bearer {FAKE_OPENAI}"),), BODY)
    made = entry([b'{"echo":"' + FAKE_OPENAI.encode() + b'"}'], request=request)
    assert made.response["body"]["json"] == {"echo": REDACTED}


def test_gzip_body_is_stored_decoded() -> None:
    made = entry(
        [gzip.compress(COMPLETION)],
        headers=(("content-type", "application/json"), ("content-encoding", "gzip")),
    )
    assert made.response["body"] == {"json": json.loads(COMPLETION)}
    assert "content-encoding" not in made.response["headers"]
    assert made.to_response().body == COMPLETION


def test_gzip_stream_is_stored_decoded_event_by_event() -> None:
    events = [b'data: {"i":%d}\n\n' % i for i in range(3)] + [b"data: [DONE]\n\n"]
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    chunks = [compressor.compress(e) + compressor.flush(zlib.Z_SYNC_FLUSH) for e in events]
    chunks.append(compressor.flush())
    made = entry(
        chunks,
        headers=(("content-type", "text/event-stream"), ("content-encoding", "gzip")),
    )
    stored = made.response["body"]["chunks"]
    assert stored[0] == {"sse": [{"data": {"i": 0}}]}
    assert stored[-1] == {"sse": [{"data": "[DONE]"}]}
    assert made.to_response().chunks == tuple(events)
    assert "content-encoding" not in made.response["headers"]


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        pytest.param(b"\x00\x01 some compressed bytes \xff", "lzw", id="unknown"),
        pytest.param(gzip.compress(COMPLETION)[:-6], "gzip", id="truncated"),
    ],
)
def test_undecodable_body_is_stored_and_replayed_as_sent(raw: bytes, encoding: str) -> None:
    made = entry(
        [raw], headers=(("content-type", "application/json"), ("content-encoding", encoding))
    )
    assert made.response["headers"]["content-encoding"] == encoding
    assert decode_body(made.response["body"]) == raw
    # The client gets the header with the still-encoded bytes, as it did from the provider.
    replayed = made.to_response()
    assert replayed.body == raw
    assert ("content-encoding", encoding) in replay_headers(replayed.headers, "HIT")


def test_empty_gzip_body_is_stored_without_encoding() -> None:
    made = entry([], headers=(("content-encoding", "gzip"), ("content-length", "0")), status=204)
    assert made.response == {"status": 204, "headers": {}, "body": {}}


def test_multipart_request_is_stored_without_its_random_boundary() -> None:
    upload = httpx.Request(
        "POST",
        "https://api.openai.com/v1/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF....WAVE")},
        data={"model": "whisper-1"},
    )
    content = upload.read()
    content_type = upload.headers["content-type"]
    boundary = content_type.split("boundary=")[1]
    request = Request("POST", str(upload.url), (("content-type", content_type),), content)
    made = entry(request=request)
    assert made.request["headers"] == {"content-type": "multipart/form-data"}
    text = json.dumps(made.request)
    assert boundary not in text
    assert "RIFF....WAVE" in text
    assert "BOUNDARY" in text


@pytest.mark.parametrize(
    ("status", "transient"),
    [(200, False), (400, False), (401, False), (404, False), (429, True), (500, True), (503, True)],
)
def test_is_transient(status: int, transient: bool) -> None:
    assert is_transient(status) is transient


def test_replay_headers() -> None:
    stored = (
        ("content-type", "application/json"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
        ("x-request-id", "req_1"),
    )
    assert replay_headers(stored, "HIT") == [
        ("content-type", "application/json"),
        ("x-request-id", "req_1"),
        (CACHE_STATUS_HEADER, "HIT"),
    ]


# -- credentials by name, in make_entry -----------------------------------------------------------


def test_url_userinfo_and_credential_params_are_not_stored() -> None:
    request = Request(
        "GET",
        "https://alice:pass-word-123@h.example/v1/models?Api_Key=query-key-456&alt=json",
        (),
        b"",
    )
    made = entry(request=request, secrets=frozenset())
    assert made.request["url"] == "https://h.example/v1/models?alt=json"
    text = json.dumps(made.to_data())
    assert "pass-word-123" not in text
    assert "alice" not in text
    assert "query-key-456" not in text


def test_credential_request_headers_are_never_stored_even_when_matched() -> None:
    names = ("ocp-apim-subscription-key", "x-custom-auth-token", "x-session-id", "x-region")
    request = Request(
        "POST",
        URL,
        (
            ("ocp-apim-subscription-key", "azure-subscription-1"),
            ("x-custom-auth-token", "custom-token-22"),
            ("x-session-id", "session-value-333"),
            ("x-region", "eu"),
        ),
        BODY,
    )
    echo = b'{"echo":"azure-subscription-1 custom-token-22 session-value-333"}'
    made = entry(
        [echo],
        headers=(
            ("content-type", "application/json"),
            ("x-ratelimit-remaining-tokens", "149000"),
            ("x-echo", "custom-token-22"),
        ),
        request=request,
        match_headers=names,
        secrets=frozenset(),
    )
    assert made.request["headers"] == {"x-region": "eu"}
    assert made.response["headers"] == {
        "content-type": "application/json",
        "x-ratelimit-remaining-tokens": "149000",
        "x-echo": REDACTED,
    }
    assert made.response["body"]["json"] == {"echo": f"{REDACTED} {REDACTED} {REDACTED}"}


def test_short_credentials_are_dropped_by_name_but_not_scrubbed_everywhere() -> None:
    request = Request("POST", URL, (("x-api-key", "abc"),), b'{"password":"pw1","n":"abc"}')
    made = entry([b'{"text":"abc is fine"}'], request=request, secrets=frozenset())
    assert made.request["body"]["json"] == {"password": REDACTED, "n": "abc"}
    assert made.response["body"]["json"] == {"text": "abc is fine"}


def test_json_body_credential_fields_are_redacted_at_any_depth_and_scrubbed() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "auth": {"clientSecret": "client-secret-1", "key": "region-1"},
        "tools": [{"config": {"api_key": "tool-api-key-22"}}],
    }
    request = Request(
        "POST", URL, (("content-type", "application/json"),), json.dumps(body).encode()
    )
    made = entry([b'{"said":"tool-api-key-22"}'], request=request, secrets=frozenset())
    assert made.request["body"]["json"] == {
        "model": "m",
        "max_tokens": 10,
        "auth": {"clientSecret": REDACTED, "key": "region-1"},
        "tools": [{"config": {"api_key": REDACTED}}],
    }
    assert made.response["body"]["json"] == {"said": REDACTED}


def test_json_stored_as_text_is_redacted_too() -> None:
    # A duplicate key cannot be stored as a structure, so the body is stored as text.
    raw = b'{"a":1,"a":2,"password":"text-password-1"}'
    request = Request("POST", URL, (("content-type", "application/json"),), raw)
    made = entry(request=request, secrets=frozenset())
    assert "text-password-1" not in json.dumps(made.to_data())
    assert REDACTED in json.dumps(made.request["body"])


def test_multipart_credential_fields_are_redacted() -> None:
    upload = httpx.Request(
        "POST",
        "https://api.example.com/v1/upload",
        files={"file": ("a.txt", b"hello")},
        data={"model": "m", "api_key": "form-api-key-123"},
    )
    content = upload.read()
    request = Request(
        "POST", str(upload.url), (("content-type", upload.headers["content-type"]),), content
    )
    made = entry([b'{"ok":"form-api-key-123"}'], request=request, secrets=frozenset())
    text = json.dumps(made.to_data())
    assert "form-api-key-123" not in text
    assert f'name=\\"api_key\\"\\r\\n\\r\\n{REDACTED}' in text
    assert made.response["body"]["json"] == {"ok": REDACTED}


# -- key shapes that are not keys -----------------------------------------------------------


EXAMPLE = "sk-proj-EXAMPLE" + "0123456789abcdefghij"


def test_an_allowed_key_shape_is_kept_and_its_pattern_listed() -> None:
    answer = json.dumps({"code": f'client = OpenAI(api_key="{EXAMPLE}")'}).encode()
    made = make_entry(
        key="k" * 32,
        request=REQUEST,
        status=200,
        headers=(("content-type", "application/json"),),
        chunks=[answer],
        match_headers=(),
        ttl=None,
        duration=0.1,
        now=NOW,
        secrets=(),
        allow_secrets=("AIza*", "sk-proj-EXAMPLE*", "sk-*"),
    )
    assert EXAMPLE in made.response["body"]["json"]["code"]
    assert made.allow_secrets == ("sk-proj-EXAMPLE*",)
    assert made.to_data()["allow_secrets"] == ["sk-proj-EXAMPLE*"]


def test_without_an_allowance_no_pattern_is_listed() -> None:
    assert entry().allow_secrets == ()


def test_a_refusal_names_where_masks_the_value_and_says_how_to_allow_it() -> None:
    answer = json.dumps({"code": EXAMPLE}).encode()
    with pytest.raises(SecretFound) as info:
        entry([answer], headers=(("content-type", "application/json"),))
    found = info.value
    assert found.path == "response.body.json.code"
    assert found.masked == "sk-pro..."
    help_text = refusal_help(found)
    assert "response.body.json.code" in help_text
    assert "sk-pro..." in help_text
    assert '@pytest.mark.llm_cache(allow_secrets=["sk-proj-EXAMPLE*"])' in help_text
    assert "llm_cache_allow_secrets" in help_text
    assert EXAMPLE not in help_text + str(found)


def test_a_key_shaped_test_id_is_refused() -> None:
    with pytest.raises(SecretFound, match=r"^test$"):
        make_entry(
            key="k" * 32,
            request=REQUEST,
            status=200,
            headers=(),
            chunks=[],
            match_headers=(),
            ttl=None,
            duration=0.1,
            now=NOW,
            secrets=(),
            test=f"test_x.py::test_x[{FAKE_GROQ}]",
        )


# -- multipart forms, stored bodies and URLs that do not parse ------------------------------------


def _part(name: str, value: str, newline: str = "\r\n") -> str:
    return f'--B{newline}Content-Disposition: form-data; name="{name}"{newline * 2}{value}{newline}'


@pytest.mark.parametrize(
    ("body", "expected", "found"),
    [
        pytest.param(
            _part("model", "m") + _part("api_key", "crlf-secret-1") + "--B--\r\n",
            _part("model", "m") + _part("api_key", REDACTED) + "--B--\r\n",
            ["crlf-secret-1"],
            id="crlf",
        ),
        pytest.param(
            _part("api_key", "lf-secret-1", "\n")
            + _part("password", "lf-secret-2", "\n")
            + _part("model", "m", "\n")
            + "--B--\n",
            _part("api_key", REDACTED, "\n")
            + _part("password", REDACTED, "\n")
            + _part("model", "m", "\n")
            + "--B--\n",
            ["lf-secret-1", "lf-secret-2"],
            id="lf-only",
        ),
        pytest.param(
            _part("password", "line-1\r\n\r\nline-2") + "--B--\r\n",
            _part("password", REDACTED) + "--B--\r\n",
            ["line-1\r\n\r\nline-2"],
            id="blank-line-in-value",
        ),
        pytest.param(
            '--B\r\nContent-Disposition: form-data; name="api_key"\r\n'
            + _part("password", "after-headless-1")
            + "--B--\r\n",
            '--B\r\nContent-Disposition: form-data; name="api_key"\r\n'
            + _part("password", REDACTED)
            + "--B--\r\n",
            ["after-headless-1"],
            id="part-without-blank-line",
        ),
        pytest.param(
            '--B\nContent-Disposition: form-data; name="api_key"\n'
            + _part("password", "after-headless-2", "\n")
            + "--B--\n",
            '--B\nContent-Disposition: form-data; name="api_key"\n'
            + _part("password", REDACTED, "\n")
            + "--B--\n",
            ["after-headless-2"],
            id="lf-part-without-blank-line",
        ),
        pytest.param(
            _part("password", REDACTED) + "--B--\r\n",
            _part("password", REDACTED) + "--B--\r\n",
            [],
            id="already-redacted",
        ),
        pytest.param(
            _part("password", "") + "--B--\r\n",
            _part("password", REDACTED) + "--B--\r\n",
            [""],
            id="empty-value",
        ),
        pytest.param("no form at all", "no form at all", [], id="no-delimiter"),
        pytest.param(
            _part("password", "lf-1\n\nlf-2", "\n") + "--B--\n",
            _part("password", REDACTED, "\n") + "--B--\n",
            ["lf-1\n\nlf-2"],
            id="lf-blank-line-in-value",
        ),
        pytest.param(
            '--B\r\nContent-Type: text/plain\r\n\r\nkeep; name="password"\r\n'
            + _part("password", "named-1")
            + "--B--",
            '--B\r\nContent-Type: text/plain\r\n\r\nkeep; name="password"\r\n'
            + _part("password", REDACTED)
            + "--B--",
            ["named-1"],
            id="unnamed-part-and-no-final-newline",
        ),
    ],
)
def test_redact_multipart(body: str, expected: str, found: list[str]) -> None:
    assert redact_multipart(body.encode(), "B") == (expected.encode(), found)


def test_redact_multipart_bytes_that_are_not_utf8() -> None:
    # Boundaries come from a header (so may hold escaped bytes); names and values are bytes.
    body = (
        b'--B\xff\r\nContent-Disposition: form-data; name="pass\xffword"\r\n\r\npw-1\r\n'
        b'--B\xff\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nk-\xff2\r\n'
        b"--B\xff--\r\n"
    )
    assert redact_multipart(body, "B\udcff") == (
        body.replace(b"pw-1", REDACTED.encode()).replace(b"k-\xff2", REDACTED.encode()),
        ["pw-1", "k-\ufffd2"],
    )


@pytest.mark.parametrize(
    ("data", "redacted", "found"),
    [
        pytest.param(
            {"a": [{"token": "t-1", "n": {"password": "p-1"}}], "m": "x"},
            {"a": [{"token": REDACTED, "n": {"password": REDACTED}}], "m": "x"},
            ["t-1", "p-1"],
            id="any-depth",
        ),
        pytest.param(
            [{"secret": REDACTED}, {"api_key": 5, "password": {"type": "string"}}],
            [{"secret": REDACTED}, {"api_key": 5, "password": {"type": "string"}}],
            [],
            id="only-new-strings",
        ),
    ],
)
def test_redact_fields(data: object, redacted: object, found: list[str]) -> None:
    data = copy.deepcopy(data)  # changed in place: the parameter must stay as written
    assert redact_fields(data) == found
    assert data == redacted


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("multipart/form-data; boundary=XyZ", "XyZ"),
        ('Multipart/Form-Data; charset=utf-8; Boundary="a=b c"', "a=b c"),
        ("multipart/mixed;boundary=q", "q"),
        ("multipart/form-data; boundary=", None),
        ("multipart/form-data", None),
        ("application/json; boundary=XyZ", None),
    ],
)
def test_multipart_boundary(content_type: str, expected: str | None) -> None:
    assert multipart_boundary(content_type) == expected


STORED_FORM = (
    b'--BOUNDARY\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n'
    b'--BOUNDARY\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nform-key-1\r\n'
    b"--BOUNDARY--\r\n"
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(
            b'{"a":{"api_key":"k-1"},"password":"<redacted>","l":[{"token":"t"}]}',
            "application/json",
            ["a.api_key", "l[0].token"],
            id="json",
        ),
        pytest.param(b'{"password":"<redacted>"}', "", [], id="json-redacted-untyped"),
        pytest.param(b'{"password":"p"}', "text/plain", ["password"], id="object-untyped"),
        pytest.param(b'\n[{"token":"t"}]', "", ["[0].token"], id="array-untyped"),
        pytest.param(STORED_FORM, "multipart/form-data", ["api_key"], id="stored-form"),
        pytest.param(STORED_FORM, "", ["api_key"], id="stored-form-untyped"),
        pytest.param(
            STORED_FORM.replace(b"BOUNDARY", b"XyZ"),
            "Multipart/Form-Data; boundary=XyZ",
            ["api_key"],
            id="form-with-its-boundary",
        ),
        pytest.param(
            STORED_FORM.replace(b"form-key-1", REDACTED.encode()),
            "multipart/form-data",
            [],
            id="form-redacted",
        ),
        pytest.param(b"password=pw-1", "text/plain", [], id="text"),
    ],
)
def test_unredacted_fields(body: bytes, content_type: str, expected: list[str]) -> None:
    assert unredacted_fields(body, content_type) == expected


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        pytest.param({"a": [FAKE_OPENAI]}, "response.body", "response.body.a[0]", id="mapping"),
        pytest.param(FAKE_OPENAI, "test", "test", id="string"),
        pytest.param({FAKE_OPENAI: 1}, "headers", "headers", id="mapping-key"),
    ],
)
def test_find_key_shape_under_a_path(value: object, path: str, expected: str) -> None:
    assert find_key_shape(value, path) == expected


@pytest.mark.parametrize(
    ("url", "shown", "stored"),
    [
        pytest.param(
            "https://h/v1?key=query-key-1&alt=sse",
            "https://h/v1?key=<redacted>&alt=sse",
            "https://h/v1?alt=sse",
            id="query-only",
        ),
        pytest.param("https://bob:pw-1@h/v1", "https://h/v1", "https://h/v1", id="userinfo-only"),
        pytest.param("https://h/v1?", "https://h/v1?", "https://h/v1?", id="as-sent"),
        pytest.param("https://h/v1?key=", "https://h/v1?key=", "https://h/v1", id="empty"),
        pytest.param(
            "https://h/v1?key=abc=def",
            "https://h/v1?key=<redacted>",
            "https://h/v1",
            id="equals-in-value",
        ),
        pytest.param(
            "https://h/v1?a=1&&key",
            "https://h/v1?a=1&&key",
            "https://h/v1?a=1&",
            id="bare-names",
        ),
        pytest.param(
            "https://h/v1?api%5Fkey=k-1&x=%3D",
            "https://h/v1?api%5Fkey=<redacted>&x=%3D",
            "https://h/v1?x=%3D",
            id="escaped-name",
        ),
        pytest.param(
            f"https://bob:pw-1@[::1/v1/{FAKE_OPENAI}",
            "https://[::1/v1/sk-pro...",
            f"https://[::1/v1/{FAKE_OPENAI}",
            id="unparsable",
        ),
    ],
)
def test_redact_url_and_stored_url(url: str, shown: str, stored: str) -> None:
    assert redact_url(url) == shown
    assert stored_url(url) == stored


def test_a_url_urlsplit_refuses_still_loses_its_credentials() -> None:
    url = "https://user:pass-123456@[::1/x?key=abc123456&q=1#frag"
    assert stored_url(url) == "https://[::1/x?q=1#frag"
    assert redact_url(url) == "https://[::1/x?key=<redacted>&q=1#frag"


def test_the_last_part_of_a_multipart_body_cut_short_is_redacted_too() -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="password"\r\n\r\ncut-short-1'
    redacted, found = redact_multipart(body, "B")
    assert found == ["cut-short-1"]
    assert redacted.endswith(b"\r\n\r\n<redacted>")
