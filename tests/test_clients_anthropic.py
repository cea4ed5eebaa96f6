"""The anthropic SDK: Messages, sync and async, streamed, image input, and on aiohttp."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

anthropic = pytest.importorskip("anthropic", reason="the anthropic scenarios need its SDK")

SOURCE = """
import base64

import anthropic

IMAGE = base64.b64encode(bytes(range(64))).decode()


def client():
    return anthropic.Anthropic(api_key=API_KEY, base_url=URL, max_retries=2)


def async_client(**options):
    return anthropic.AsyncAnthropic(api_key=API_KEY, base_url=URL, **options)


def test_message_raw_response():
    raw = client().messages.with_raw_response.create(
        model="claude-fake", max_tokens=50, messages=MESSAGES
    )
    save("message", [raw.parse().model_dump(), raw.headers["x-llm-cache-status"]])


def test_stream():
    with client().messages.stream(model="claude-fake", max_tokens=50, messages=MESSAGES) as s:
        events = [event.model_dump() for event in s]
    save("stream", events)


def test_async_stream():
    async def run():
        async with async_client().messages.stream(
            model="claude-fake", max_tokens=50, messages=MESSAGES
        ) as stream:
            return [text async for text in stream.text_stream]

    save("async_stream", asyncio.run(run()))


def test_image_input():
    image = {"type": "base64", "media_type": "image/png", "data": IMAGE}
    content = [{"type": "text", "text": "describe"}, {"type": "image", "source": image}]
    message = client().messages.create(
        model="claude-fake", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    save("image_input", message.content[0].text)


def test_aiohttp_client():
    try:
        http_client = anthropic.DefaultAioHttpClient()
    except Exception as exc:  # older SDKs need the anthropic[aiohttp] extra
        pytest.skip(f"DefaultAioHttpClient is not available: {exc}")

    async def run():
        async with async_client(http_client=http_client) as aio:
            message = await aio.messages.create(
                model="claude-fake", max_tokens=50, messages=MESSAGES
            )
            stream = await aio.messages.create(
                model="claude-fake", max_tokens=50, messages=MESSAGES, stream=True
            )
            return message.model_dump(), [event.model_dump() async for event in stream]

    save("aiohttp_client", asyncio.run(run()))
"""


def test_anthropic_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=5)
    recorded, replayed = outcome.recorded, outcome.replayed
    outcome.same("stream", "async_stream", "image_input")
    assert [recorded["message"][1], replayed["message"][1]] == ["MISS", "HIT"]
    assert replayed["message"][0] == recorded["message"][0]
    types = [event["type"] for event in replayed["stream"]]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "".join(replayed["async_stream"]) == "Echo: tell me a story about seven small cats"
    assert replayed["image_input"] == "Echo: describe [image]"
    if "aiohttp_client" in recorded:
        outcome.same("aiohttp_client")
        assert [e["type"] for e in replayed["aiohttp_client"][1]][-1] == "message_stop"
