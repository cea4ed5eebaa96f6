"""google-genai: generate_content and its stream, sync (httpx2) and async (raw aiohttp)."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("google.genai", reason="the gemini scenarios need google-genai")

SOURCE = """
import aiohttp
from google import genai
from google.genai import types


def client():
    # Keep the client while it is used: a dropped genai.Client closes its connections.
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=URL))


def test_generate_content():
    gemini = client()
    response = gemini.models.generate_content(model="gemini-fake", contents="hello gemini")
    save("generate_content", [response.text, response.usage_metadata.total_token_count])


def test_generate_content_stream():
    gemini = client()
    chunks = gemini.models.generate_content_stream(
        model="gemini-fake", contents="stream a gemini answer please"
    )
    save("stream", [chunk.text for chunk in chunks])


def test_async(monkeypatch):
    sent = []
    original = aiohttp.ClientSession._request

    def counting(self, method, url, **kwargs):
        sent.append(str(url))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counting)

    async def run():
        gemini = client()
        aio = gemini.aio
        response = await aio.models.generate_content(model="gemini-fake", contents="hi async")
        chunks = await aio.models.generate_content_stream(
            model="gemini-fake", contents="stream a gemini answer please"
        )
        return response.text, [chunk.text async for chunk in chunks]

    save("async", [*asyncio.run(run()), len(sent)])
"""


def test_genai_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=3)
    outcome.same()
    replayed = outcome.replayed
    assert replayed["generate_content"][0] == "Echo: hello gemini"
    chunks = replayed["stream"]
    assert chunks == ["Echo: stream a gemini", " answer please"]
    text, async_chunks, aiohttp_requests = replayed["async"]
    assert text == "Echo: hi async"
    assert async_chunks == chunks
    assert aiohttp_requests == 2, "google-genai's async client (raw aiohttp) was cached"
