"""Plain requests and aiohttp against the fake provider: recorded once, replayed offline."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

requests = pytest.importorskip("requests", reason="the requests adapter needs requests")
aiohttp = pytest.importorskip("aiohttp", reason="the aiohttp adapter needs aiohttp")

REQUESTS = """
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

AUTH = {"authorization": f"Bearer {API_KEY}"}


def chat(text, **extra):
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": text}], **extra}


def test_requests_json():
    r = requests.post(URL + "/v1/chat/completions", json=chat("plain json"), headers=AUTH)
    save("requests_json", [r.status_code, r.json(), r.headers["x-llm-cache-status"]])


def test_requests_gzip():
    r = requests.post(URL + "/gzip/v1/chat/completions", json=chat("zipped"), headers=AUTH)
    save("requests_gzip", r.json())


def test_requests_stream_lines():
    body = chat("stream me some lines please", stream=True)
    with requests.post(URL + "/v1/chat/completions", json=body, headers=AUTH, stream=True) as r:
        save("requests_stream_lines", [line.decode() for line in r.iter_lines()])


def test_requests_stream_chunks():
    body = chat("stream me some chunks please", stream=True)
    with requests.post(URL + "/v1/chat/completions", json=body, headers=AUTH, stream=True) as r:
        chunks = [chunk.decode() for chunk in r.iter_content(chunk_size=None)]
    save("requests_stream_chunks", [r.headers["content-type"], chunks])


def test_requests_session():
    with requests.Session() as session:
        session.headers.update(AUTH)
        first = session.post(URL + "/v1/chat/completions", json=chat("one")).json()
        second = session.post(URL + "/v1/embeddings", json={"model": "e", "input": "x"}).json()
        models = session.get(URL + "/v1/models").json()
    save("requests_session", [first, second, models])


def test_requests_retries():
    retry = Retry(total=3, status_forcelist=[429], allowed_methods=None, backoff_factor=0)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        r = session.post(URL + "/flaky/v1/chat/completions", json=chat("again"), headers=AUTH)
    save("requests_retries", [r.status_code, r.json()])
"""


def test_requests_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, REQUESTS, tests=6)
    recorded, replayed = outcome.recorded, outcome.replayed
    assert recorded["requests_json"][2] == "MISS"
    assert replayed["requests_json"][2] == "HIT"
    assert replayed["requests_json"][:2] == recorded["requests_json"][:2]
    outcome.same(
        "requests_gzip",
        "requests_stream_lines",
        "requests_stream_chunks",
        "requests_session",
        "requests_retries",
    )
    assert recorded["requests_gzip"]["choices"][0]["message"]["content"] == "Echo: zipped"
    content_type, chunks = replayed["requests_stream_chunks"]
    assert content_type == "text/event-stream"
    # One chunk per SSE event the provider flushed: role, two pieces, finish, [DONE].
    assert len(chunks) == 5
    assert all(c.startswith("data: ") and c.endswith("\n\n") for c in chunks)
    assert [line for line in replayed["requests_stream_lines"] if line][-1] == "data: [DONE]"
    # urllib3 retried the 429 itself: two requests upstream, one answer stored.
    assert suite.provider.count("/flaky/v1/chat/completions") == 2
    assert replayed["requests_retries"][0] == 200
    gzip_cassette = outcome.cassettes["cassettes/test_scenarios/test_requests_gzip.yaml"]
    assert "content-encoding" not in gzip_cassette
    assert "Echo: zipped" in gzip_cassette


AIOHTTP = """
import gzip

import aiohttp

AUTH = {"authorization": f"Bearer {API_KEY}"}


def chat(text, **extra):
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": text}], **extra}


async def post(path, body, **session_options):
    async with aiohttp.ClientSession(**session_options) as session:
        async with session.post(URL + path, json=body, headers=AUTH) as r:
            return r.status, dict(r.headers), await r.read()


def test_aiohttp_json():
    status, headers, body = asyncio.run(post("/v1/chat/completions", chat("plain")))
    save("aiohttp_json", [status, json.loads(body), headers["x-llm-cache-status"]])


def test_aiohttp_gzip():
    _, _, body = asyncio.run(post("/gzip/v1/chat/completions", chat("zipped")))
    save("aiohttp_gzip", json.loads(body))


def test_aiohttp_gzip_left_encoded():
    # As SDK transports over aiohttp do: the caller decodes what the header says.
    path, body = "/gzip/v1/chat/completions", chat("zipped raw")
    _, headers, raw = asyncio.run(post(path, body, auto_decompress=False))
    if headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    save("aiohttp_gzip_left_encoded", json.loads(raw))


def test_aiohttp_stream_chunks():
    async def run():
        body = chat("stream me some chunks please", stream=True)
        async with aiohttp.ClientSession() as session:
            async with session.post(URL + "/v1/chat/completions", json=body) as r:
                # Live, the end of the body may come as an empty chunk of its own.
                chunks = [data.decode() async for data, _ in r.content.iter_chunks() if data]
                return r.headers["content-type"], chunks

    save("aiohttp_stream_chunks", asyncio.run(run()))


def test_aiohttp_stream_any_and_lines():
    async def run(how):
        body = chat(f"stream me by {how}", stream=True)
        async with aiohttp.ClientSession() as session:
            async with session.post(URL + "/v1/chat/completions", json=body) as r:
                if how == "lines":
                    return [line.decode() async for line in r.content]
                return [data.decode() async for data in r.content.iter_any()]

    save("aiohttp_stream_any", asyncio.run(run("any")))
    save("aiohttp_stream_lines", asyncio.run(run("lines")))


def test_aiohttp_get_and_error_status():
    async def run():
        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(URL + "/v1/models") as r:
                models = await r.json()
            async with session.post(URL + "/v1/nowhere", json={}) as r:
                return models, r.status, await r.json()

    save("aiohttp_get_and_error_status", asyncio.run(run()))
"""


def test_aiohttp_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, AIOHTTP, tests=6)
    recorded, replayed = outcome.recorded, outcome.replayed
    assert [recorded["aiohttp_json"][2], replayed["aiohttp_json"][2]] == ["MISS", "HIT"]
    assert replayed["aiohttp_json"][:2] == recorded["aiohttp_json"][:2]
    outcome.same(
        "aiohttp_gzip",
        "aiohttp_gzip_left_encoded",
        "aiohttp_stream_chunks",
        "aiohttp_stream_lines",
        "aiohttp_get_and_error_status",
    )
    assert recorded["aiohttp_gzip_left_encoded"]["choices"][0]["message"]["content"] == (
        "Echo: zipped raw"
    )
    content_type, chunks = replayed["aiohttp_stream_chunks"]
    assert content_type == "text/event-stream"
    assert len(chunks) == 5
    assert all(c.startswith("data: ") and c.endswith("\n\n") for c in chunks)
    # Live, iter_any() gets whatever arrived since it last looked; replayed, each stored
    # chunk arrives in its own turn of the event loop, as a server sends them.
    assert "".join(replayed["aiohttp_stream_any"]) == "".join(recorded["aiohttp_stream_any"])
    assert len(replayed["aiohttp_stream_any"]) == 5
    assert replayed["aiohttp_get_and_error_status"][1] == 404
