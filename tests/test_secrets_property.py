"""The recorder never writes a file its own checker rejects, nor a credential it was given.

Generated exchanges plant credentials everywhere a request can carry one (userinfo, query
parameters in any case, credential headers, JSON fields at any depth, form fields) and echo
them back in response headers, bodies and stream events; some answers hold a key-shaped
example, allowed or not. Key-shaped strings here are fakes.
"""

from __future__ import annotations

import json
import os
import string
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmcache._capture import SecretFound, make_entry
from pytest_llmcache._cassette import Cassette, Entry
from pytest_llmcache._check import check_file
from pytest_llmcache._exchange import Request
from pytest_llmcache._key import request_key

NOW = datetime(2024, 5, 1, tzinfo=timezone.utc)
EXAMPLE_KEY = "sk-proj-EXAMPLE" + "0123456789abcdefghij"
PATTERN = "sk-proj-EXAMPLE*"

QUERY_NAMES = [
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
]
HEADER_NAMES = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-amz-security-token",
    "cookie",
    "x-custom-auth",
    "x-session-id",
    "x-client-secret",
    "x-upstream-token",
    "x-goog-signature",
    "x-db-password",
    "x-credential",
]
FIELD_NAMES = [
    "api_key",
    "apiKey",
    "API-KEY",
    "access_token",
    "accessToken",
    "client_secret",
    "password",
    "secret",
    "token",
    "private_key",
    "refresh_token",
]

# Distinctive enough never to occur by chance, and long enough to be scrubbed everywhere.
secrets = st.text(string.ascii_letters + string.digits, min_size=6, max_size=14).map(
    lambda s: "Pl4nt" + s
)


@st.composite
def any_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))


@st.composite
def nested(draw: st.DrawFn, value: object) -> object:
    """``value`` wrapped in 0 to 3 levels of mappings and lists."""
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            value = {draw(st.sampled_from(["config", "auth", "extra", "tools"])): value}
        else:
            value = [draw(st.sampled_from([1, "x", None])), value]
    return value


@st.composite
def exchanges(draw: st.DrawFn) -> dict[str, Any]:
    planted: list[str] = []

    def plant() -> str:
        value = draw(secrets)
        planted.append(value)
        return value

    url = "https://api.example.com/v1/chat"
    if draw(st.booleans()):
        url = f"https://{plant()}:{plant()}@api.example.com/v1/chat"
    params = [
        (draw(any_case(name)), plant())
        for name in draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=3, unique=True))
    ]
    params.append(("alt", "sse"))
    url += "?" + "&".join(f"{k}={v}" for k, v in params)

    headers: list[tuple[str, str]] = []
    header_names = draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=4, unique=True))
    for name in header_names:
        scheme = draw(st.sampled_from(["", "Bearer ", "Token "]))
        value = f"session={plant()}" if name == "cookie" else scheme + plant()
        headers.append((name, value))

    body: bytes
    if draw(st.booleans()):
        fields = {
            name: plant() for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=3))
        }
        form = httpx.Request(
            "POST", url, data={"model": "m", **fields}, files={"file": ("a.txt", b"hello")}
        )
        body = form.read()
        headers.append(("content-type", form.headers["content-type"]))
    else:
        data: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": ["hi"]}
        for name in draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=3)):
            data[draw(st.sampled_from(["extra", "auth", "options"])) + "_" + str(len(data))] = draw(
                nested({name: plant()})
            )
        body = json.dumps(data).encode()
        headers.append(("content-type", "application/json"))
    request = Request("POST", url, tuple(headers), body)

    echoed = [v for v in planted if draw(st.booleans())] or planted[:1]
    example = draw(st.sampled_from(["none", "allowed", "refused"]))
    said = " and ".join(echoed) + (f" {EXAMPLE_KEY}" if example != "none" else "")
    response_headers = [("x-ratelimit-remaining-tokens", "1000")]
    if draw(st.booleans()) and echoed:
        response_headers.append(("x-debug-echo", f"saw {echoed[0]}"))
    if draw(st.booleans()):
        response_headers.append(("content-type", "text/event-stream"))
        chunks = [
            f"data: {json.dumps({'delta': part})}\n\n".encode() for part in [said, *echoed, "end"]
        ]
        chunks.append(b"data: [DONE]\n\n")
    else:
        response_headers.append(("content-type", "application/json"))
        chunks = [json.dumps({"answer": said, "echo": draw(nested(echoed))}).encode()]
    return {
        "request": request,
        "headers": tuple(response_headers),
        "chunks": chunks,
        "match_headers": tuple(draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=3))),
        "allow": (PATTERN,) if example == "allowed" else (),
        "example": example,
        "planted": planted,
    }


# Mutation testing reruns this test for every mutant: fewer examples there, the same ones
# each time and none replayed from a previous run, so a mutant's verdict is repeatable.
UNDER_MUTATION = os.environ.get("LLM_CACHE_MUTATION") == "1"
_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXAMPLES = (
    settings(_COMMON, max_examples=25, derandomize=True, database=None)
    if UNDER_MUTATION
    else settings(_COMMON, max_examples=100)
)


@EXAMPLES
@given(exchange=exchanges())
def test_a_recorded_file_passes_check_and_holds_no_planted_secret(
    tmp_path: Path, exchange: dict[str, Any]
) -> None:
    request: Request = exchange["request"]

    def record() -> Entry:
        return make_entry(
            key=request_key(request),
            request=request,
            status=200,
            headers=exchange["headers"],
            chunks=exchange["chunks"],
            match_headers=exchange["match_headers"],
            ttl=None,
            duration=0.1,
            now=NOW,
            secrets=(),
            test="test_x.py::test_x",
            allow_secrets=exchange["allow"],
        )

    if exchange["example"] == "refused":
        with pytest.raises(SecretFound) as info:
            record()
        assert info.value.masked == "sk-pro..."
        return
    entry = record()
    assert entry.allow_secrets == exchange["allow"]
    path = tmp_path / "c.yaml"
    cassette = Cassette(path, [entry])
    cassette.dirty = True
    cassette.save()
    assert check_file(path).problems == []
    text = path.read_text("utf-8")
    sent = request.url + repr(request.headers) + request.body.decode()
    for secret in exchange["planted"]:
        if secret in sent:
            assert secret not in text
