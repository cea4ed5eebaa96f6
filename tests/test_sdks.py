"""Real SDKs over loopback: recorded once, replayed with zero upstream requests.

Each scenario writes what the caller saw (message text, stream chunks) to a file, so the
record run and the replay run can be compared chunk by chunk.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette

pytest.importorskip("openai")
pytest.importorskip("anthropic")

SCENARIOS = """
import asyncio
import json
import os
import pathlib

import anthropic
import openai
import pytest

URL = os.environ["FAKE_URL"]
OUT = pathlib.Path(os.environ["SCENARIO_OUT"])
MESSAGES = [{"role": "user", "content": "tell me a story about seven small cats"}]


def save(name, value):
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(value))


def openai_client():
    return openai.OpenAI(api_key="sk-test-key", base_url=URL + "/v1", max_retries=2)


def anthropic_client():
    return anthropic.Anthropic(api_key="test-key", base_url=URL, max_retries=2)


pytestmark = pytest.mark.llm_cache


def test_openai_chat():
    raw = openai_client().chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    completion = raw.parse()
    save("openai_chat", [completion.model_dump(), raw.headers.get("x-llm-cache-status")])


def test_openai_stream():
    stream = openai_client().chat.completions.create(
        model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    save("openai_stream", [chunk.model_dump() for chunk in stream])


def test_openai_async_stream():
    async def run():
        client = openai.AsyncOpenAI(api_key="sk-test-key", base_url=URL + "/v1")
        stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True)
        return [chunk.model_dump() async for chunk in stream]

    save("openai_async_stream", asyncio.run(run()))


def test_openai_async_chat():
    async def run():
        client = openai.AsyncOpenAI(api_key="sk-test-key", base_url=URL + "/v1")
        return (await client.chat.completions.create(model="gpt", messages=MESSAGES)).model_dump()

    save("openai_async_chat", asyncio.run(run()))


def test_openai_embeddings():
    result = openai_client().embeddings.create(model="emb", input=["a", "b"])
    save("openai_embeddings", [item.embedding for item in result.data])


def test_anthropic_message():
    message = anthropic_client().messages.create(model="claude", max_tokens=50, messages=MESSAGES)
    save("anthropic_message", message.model_dump())


def test_anthropic_stream():
    with anthropic_client().messages.stream(model="claude", max_tokens=50, messages=MESSAGES) as s:
        events = [event.model_dump() for event in s]
    save("anthropic_stream", events)


def test_anthropic_async_stream():
    async def run():
        client = anthropic.AsyncAnthropic(api_key="test-key", base_url=URL)
        async with client.messages.stream(model="claude", max_tokens=50, messages=MESSAGES) as s:
            return [text async for text in s.text_stream]

    save("anthropic_async_stream", asyncio.run(run()))
"""

NAMES = [
    "openai_chat",
    "openai_stream",
    "openai_async_stream",
    "openai_async_chat",
    "openai_embeddings",
    "anthropic_message",
    "anthropic_stream",
    "anthropic_async_stream",
]


@pytest.fixture
def recorded(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run the scenarios in record mode and return what each saw."""
    suite.write("test_scenarios.py", SCENARIOS)
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "record"))
    suite.run("--llm-cache=record").assert_outcomes(passed=len(NAMES))
    return {n: json.loads((suite.path / "record" / f"{n}.json").read_text()) for n in NAMES}


def test_replay_gives_what_recording_gave_with_no_upstream_call(
    suite: Suite, recorded: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream = suite.upstream()
    assert upstream == len(NAMES)
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "replay"))
    suite.run().assert_outcomes(passed=len(NAMES))
    assert suite.upstream() == upstream, "replay reached the provider"
    for name in NAMES:
        replayed = json.loads((suite.path / "replay" / f"{name}.json").read_text())
        if name == "openai_chat":
            assert recorded[name] == [replayed[0], "MISS"]
            assert replayed[1] == "HIT"
        else:
            assert replayed == recorded[name], name


def gist(event: dict[str, Any]) -> tuple[object, ...]:
    """What a chat stream event says: its id, its pieces of text, whether it has the usage."""
    pieces = [choice["delta"].get("content") for choice in event["choices"]]
    return event["id"], pieces, event.get("usage") is not None


def test_streams_replay_as_the_same_chunks(suite: Suite, recorded: dict[str, object]) -> None:
    openai_chunks = recorded["openai_stream"]
    assert isinstance(openai_chunks, list)
    assert len(openai_chunks) > 4, "the fake provider streams several chunks"
    assert openai_chunks[-1]["usage"] is not None
    name = "cassettes/test_scenarios/test_openai_stream.yaml"
    text = suite.cassettes()[name]
    # One stored chunk per SSE event the provider flushed: role, pieces, finish, usage, DONE.
    (entry,) = Cassette.load(suite.path / name)
    chunks = entry.to_response().chunks
    assert len(chunks) == len(openai_chunks) + 1
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in chunks)
    assert [gist(json.loads(chunk[6:])) for chunk in chunks[:-1]] == list(map(gist, openai_chunks))
    assert chunks[-1] == b"data: [DONE]\n\n"
    # Stored as the event-stream text, one event per chunk.
    assert "\n  response_sse: |\n    data: {" in text
    assert text.endswith("\n\n    data: [DONE]\n")
    assert text.count("\n\n    data: ") == len(openai_chunks)
    anthropic_text = recorded["anthropic_async_stream"]
    assert isinstance(anthropic_text, list)
    assert "".join(anthropic_text).startswith("Echo: tell me a story")


def test_cassettes_hold_no_credential_cookie_or_account_id(
    suite: Suite, recorded: dict[str, object]
) -> None:
    everything = "\n".join(suite.cassettes().values())
    for forbidden in (
        "sk-test-key",
        "test-key",
        "authorization",
        "x-api-key",
        "set-cookie",
        "fakecookie",
        "openai-organization",
        "org-fake",
        "anthropic-organization-id",
        "x-stainless",
        "user-agent",
    ):
        assert forbidden not in everything, forbidden
