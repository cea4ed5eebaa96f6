"""The request the cache sees from an httpx or httpx2 client: headers as the client holds
them (names lower-cased, in order, repeats kept, non-ASCII values decoded as httpx does)."""

from __future__ import annotations

from types import ModuleType

import httpx
import httpx2
import pytest
from conftest import Suite
from scenarios import record_then_replay

from pytest_llmcache._adapters._httpx import _request


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
@pytest.mark.parametrize(
    "extra",
    [
        [],
        [("X-Note", "café".encode())],
        [("X-Raw", b"\xe9\xff")],
        # One header that is not UTF-8 makes every header Latin-1, the UTF-8 one too.
        [("X-Note", "café".encode()), ("X-Raw", b"\xe9\xff")],
        # bytes.lower() leaves a non-ASCII capital (É) as it is, as httpx does.
        [(b"X-R\xc9f", b"1")],
        [("X-CAFÉ".encode(), b"1")],
        # A NUL inside a value: kept, the headers after it unmoved.
        [("X-Nul", b"a\x00b"), ("X-After", b"2")],
    ],
    ids=["ascii", "utf-8", "latin-1", "utf-8-and-latin-1", "latin-1-name", "utf-8-name", "nul"],
)
def test_headers_are_what_the_client_holds(
    lib: ModuleType, extra: list[tuple[str | bytes, bytes]]
) -> None:
    headers = [("X-Twice", "1"), ("x-twice", "2"), ("Content-Type", "application/json"), *extra]
    request = lib.Request("POST", "http://h.example/v1/x?b=2", headers=headers, content=b"{}")
    seen = _request(request)
    assert seen.headers == tuple(request.headers.multi_items())
    own = [h for h in seen.headers if h[0] not in ("host", "content-length")]
    assert own[:3] == [("x-twice", "1"), ("x-twice", "2"), ("content-type", "application/json")]
    assert (seen.method, seen.url, seen.body) == ("POST", "http://h.example/v1/x?b=2", b"{}")


RESPONSE_STATE = """
import httpx
import httpx2

AUTH = {"authorization": f"Bearer {API_KEY}"}
BODY = {"model": "gpt-fake", "messages": MESSAGES}
LIBS = pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])


def state(response, *, wire_size=True):
    return [
        response.status_code,
        response.http_version,
        response.is_closed,
        response.is_stream_consumed,
        response.num_bytes_downloaded == len(response.content) if wire_size else None,
        response.headers["content-type"],
        response.headers.get("content-encoding"),
        response.json(),
        b"".join(response.iter_bytes()) == response.content,
        [len(chunk) for chunk in response.iter_bytes(chunk_size=100)],
    ]


@LIBS
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/gzip/v1/chat/completions"])
def test_sync(lib, path):
    with lib.Client() as client:
        response = client.post(URL + path, json=BODY, headers=AUTH)
        name = f"sync-{lib.__name__}{path.replace('/', '-')}"
        save(name, state(response, wire_size="gzip" not in path))
        response.close()
        assert response.is_closed


@LIBS
def test_async(lib):
    async def call():
        async with lib.AsyncClient() as client:
            response = await client.post(URL + "/v1/chat/completions", json=BODY, headers=AUTH)
            await response.aread()
            await response.aclose()
            return state(response)

    save(f"async-{lib.__name__}", asyncio.run(call()))
"""


def test_a_replayed_response_is_left_as_reading_a_live_one_leaves_it(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = record_then_replay(suite, monkeypatch, RESPONSE_STATE, tests=6)
    assert len(outcome.recorded) == 6
    plain = outcome.replayed["sync-httpx2-v1-chat-completions"]
    assert plain[:5] == [200, "HTTP/1.1", True, True, True]
    for lib in ("httpx", "httpx2"):
        # The body is stored decoded: the replay no longer says how the wire encoded it.
        zipped = f"sync-{lib}-gzip-v1-chat-completions"
        assert outcome.recorded[zipped].pop(6) == "gzip"
        assert outcome.replayed[zipped].pop(6) is None
    outcome.same()


RAW_STREAMS = """
import httpx
import httpx2

BODY = {"model": "text-embedding-3-small", "input": "seven small cats"}
LIBS = pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])


def seen(response, raw):
    return [response.status_code, response.headers["content-type"], raw.decode()]


@LIBS
@pytest.mark.parametrize("size", [None, 7])
def test_sync(lib, size):
    with lib.Client() as client:
        with client.stream("POST", URL + "/v1/embeddings", json=BODY) as response:
            raw = b"".join(response.iter_raw(size))
        save(f"sync-{lib.__name__}-{size}", seen(response, raw))


@LIBS
def test_sync_send(lib):
    with lib.Client() as client:
        request = client.build_request("POST", URL + "/v1/embeddings", json=BODY)
        response = client.send(request, stream=True)
        raw = b"".join(response.iter_raw())
        response.close()
        save(f"send-{lib.__name__}", seen(response, raw))


@LIBS
def test_async(lib):
    async def call():
        async with lib.AsyncClient() as client:
            async with client.stream("POST", URL + "/v1/embeddings", json=BODY) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            return seen(response, raw)

    save(f"async-{lib.__name__}", asyncio.run(call()))
"""


def test_a_stream_asked_for_gives_a_replayed_body_raw_as_it_came(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``client.stream()`` and ``send(stream=True)`` hand the caller the body unread:
    ``iter_raw`` and ``aiter_raw`` read it from a replay as from the network."""
    outcome = record_then_replay(suite, monkeypatch, RAW_STREAMS, tests=8)
    assert len(outcome.recorded) == 8
    assert outcome.replayed["sync-httpx2-7"][2].startswith('{"object"')
    outcome.same()
