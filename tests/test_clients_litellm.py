"""litellm: completion, acompletion (aiohttp by default), streaming and embeddings.

litellm's async calls go through its ``LiteLLMAiohttpTransport`` unless a user switches it
off; the scenarios count the aiohttp requests to show that default path is the one cached.
"""

from __future__ import annotations

import os

import pytest
from conftest import Suite
from scenarios import record_then_replay

# litellm fetches its model price list from the network on import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm", reason="the litellm scenarios need litellm")

SOURCE = """
import aiohttp
import litellm

OPTIONS = {"model": "openai/gpt-fake", "api_base": URL + "/v1", "api_key": API_KEY}


@pytest.fixture
def aiohttp_requests(monkeypatch):
    sent = []
    original = aiohttp.ClientSession._request

    def counting(self, method, url, **kwargs):
        sent.append(str(url))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counting)
    return sent


def test_completion():
    response = litellm.completion(messages=MESSAGES, **OPTIONS)
    save("completion", [response.choices[0].message.content, response.usage.total_tokens])


def test_completion_stream():
    stream = litellm.completion(messages=MESSAGES, stream=True, **OPTIONS)
    save("completion_stream", [chunk.choices[0].delta.content for chunk in stream])


def test_acompletion(aiohttp_requests):
    async def run():
        response = await litellm.acompletion(messages=MESSAGES, **OPTIONS)
        stream = await litellm.acompletion(messages=MESSAGES, stream=True, **OPTIONS)
        chunks = [chunk.choices[0].delta.content async for chunk in stream]
        return response.choices[0].message.content, chunks

    save("acompletion", [*asyncio.run(run()), len(aiohttp_requests)])


def test_embedding():
    options = {**OPTIONS, "model": "openai/text-embedding-fake"}
    response = litellm.embedding(input=["a", "b"], **options)
    save("embedding", [item["embedding"] for item in response.data])
"""


def test_litellm_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=4)
    outcome.same()
    replayed = outcome.replayed
    story = "Echo: tell me a story about seven small cats"
    assert replayed["completion"][0] == story
    chunks = replayed["completion_stream"]
    assert "".join(c or "" for c in chunks) == story
    assert len(chunks) >= 4
    text, async_chunks, aiohttp_requests = replayed["acompletion"]
    assert text == story
    assert async_chunks == chunks
    assert aiohttp_requests == 2, "litellm's async default (aiohttp) was the path cached"
    assert len(replayed["embedding"]) == 2
