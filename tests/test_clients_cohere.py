"""cohere (httpx): v2 chat and chat_stream, sync and async.

Cohere's stream reader refuses a response whose content type is not ``text/event-stream``,
so a replayed stream that parses shows the stored content type came back.
"""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("cohere", reason="the cohere scenarios need the cohere SDK")

SOURCE = """
import cohere


def test_chat():
    client = cohere.ClientV2(api_key=API_KEY, base_url=URL)
    response = client.chat(model="command-fake", messages=MESSAGES)
    save("chat", [response.message.content[0].text, response.finish_reason])


def test_chat_stream():
    client = cohere.ClientV2(api_key=API_KEY, base_url=URL)
    events = client.chat_stream(model="command-fake", messages=MESSAGES)
    save("chat_stream", [event.model_dump() for event in events])


def test_raw_stream_content_type():
    client = cohere.ClientV2(api_key=API_KEY, base_url=URL)
    with client.with_raw_response.chat_stream(model="command-fake", messages=MESSAGES) as raw:
        types = [event.type for event in raw.data]
        save("raw_stream", [raw.headers["content-type"], types])


def test_async_chat_stream():
    async def run():
        client = cohere.AsyncClientV2(api_key=API_KEY, base_url=URL)
        events = client.chat_stream(model="command-fake", messages=MESSAGES)
        return [event.model_dump() async for event in events]

    save("async_chat_stream", asyncio.run(run()))
"""


def test_cohere_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=4)
    outcome.same()
    replayed = outcome.replayed
    assert replayed["chat"] == ["Echo: tell me a story about seven small cats", "COMPLETE"]
    types = [event["type"] for event in replayed["chat_stream"]]
    assert types[0] == "message-start"
    assert types[-1] == "message-end"
    assert types.count("content-delta") == 3
    assert replayed["raw_stream"] == ["text/event-stream", types]
    assert replayed["async_chat_stream"] == replayed["chat_stream"]
    cassette = outcome.cassettes["cassettes/test_scenarios/test_chat_stream.yaml"]
    assert "content-type: text/event-stream" in cassette
