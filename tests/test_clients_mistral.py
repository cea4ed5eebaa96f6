"""mistralai (httpx2): chat.complete and chat.stream, sync and async."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("mistralai", reason="the mistral scenarios need the mistralai SDK")

SOURCE = """
try:
    from mistralai.client import Mistral
except ImportError:  # mistralai < 3
    from mistralai import Mistral


def client():
    return Mistral(api_key=API_KEY, server_url=URL)


def test_complete():
    mistral = client()
    response = mistral.chat.complete(model="mistral-fake", messages=MESSAGES)
    save("complete", [response.choices[0].message.content, response.usage.total_tokens])


def test_stream():
    mistral = client()
    events = mistral.chat.stream(model="mistral-fake", messages=MESSAGES)
    save("stream", [event.data.model_dump(mode="json") for event in events])


def test_async():
    async def run():
        mistral = client()
        response = await mistral.chat.complete_async(model="mistral-fake", messages=MESSAGES)
        events = await mistral.chat.stream_async(model="mistral-fake", messages=MESSAGES)
        chunks = [event.data.choices[0].delta.content async for event in events]
        return response.choices[0].message.content, chunks

    save("async", asyncio.run(run()))
"""


def test_mistral_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=3)
    outcome.same()
    replayed = outcome.replayed
    story = "Echo: tell me a story about seven small cats"
    assert replayed["complete"][0] == story
    chunks = replayed["stream"]
    assert len(chunks) == 4
    assert chunks[-1]["usage"]["total_tokens"] > 0
    text, async_chunks = replayed["async"]
    assert text == story
    assert "".join(async_chunks) == story
