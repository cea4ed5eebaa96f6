"""groq (httpx): chat, streamed chat and async chat."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("groq", reason="the groq scenarios need the groq SDK")

SOURCE = """
import groq


def test_chat():
    raw = groq.Groq(api_key=API_KEY, base_url=URL).chat.completions.with_raw_response.create(
        model="llama-fake", messages=MESSAGES
    )
    save("chat", [raw.parse().choices[0].message.content, raw.headers["x-llm-cache-status"]])


def test_stream():
    stream = groq.Groq(api_key=API_KEY, base_url=URL).chat.completions.create(
        model="llama-fake", messages=MESSAGES, stream=True
    )
    save("stream", [chunk.choices[0].delta.content for chunk in stream])


def test_async_stream():
    async def run():
        client = groq.AsyncGroq(api_key=API_KEY, base_url=URL)
        stream = await client.chat.completions.create(
            model="llama-fake", messages=MESSAGES, stream=True
        )
        return [chunk.choices[0].delta.content async for chunk in stream]

    save("async_stream", asyncio.run(run()))
"""


def test_groq_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=3)
    outcome.same("stream", "async_stream")
    recorded, replayed = outcome.recorded, outcome.replayed
    assert recorded["chat"] == ["Echo: tell me a story about seven small cats", "MISS"]
    assert replayed["chat"] == ["Echo: tell me a story about seven small cats", "HIT"]
    assert len(replayed["stream"]) == 5
    assert replayed["async_stream"] == replayed["stream"]
