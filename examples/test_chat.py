"""Chat completions through the openai SDK: recorded once, then replayed offline on every run.

The expected answers are those of the bundled local server, an echo. Recorded against a real
model, assert what that model reliably says instead.
"""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from pytest_llmcache import Mode, TestCache

pytestmark = pytest.mark.llm_cache  # every test in this module records and replays

MODEL = "gpt-4o-mini"


def test_chat(client: openai.OpenAI) -> None:
    """A plain chat completion."""
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert completion.choices[0].message.content == "You said: Hello there"


@pytest.mark.llm_cache(ttl="30d")  # older entries count as expired; `auto` re-records them
def test_chat_cache_status(client: openai.OpenAI, llm_cache: TestCache) -> None:
    """The ``llm_cache`` fixture and the ``X-LLM-Cache-Status`` header tell what happened."""
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "Is this cached?"}]
    )
    assert raw.parse().choices[0].message.content == "You said: Is this cached?"
    assert llm_cache.path.name == "test_chat_cache_status.yaml"
    if llm_cache.mode is Mode.REPLAY:  # served from the cassette, no network
        assert raw.headers["x-llm-cache-status"] == "HIT"
        assert llm_cache.counts.replayed == 1
    elif llm_cache.mode is Mode.RECORD:  # sent to the provider and stored
        assert raw.headers["x-llm-cache-status"] == "MISS"
        assert llm_cache.counts.recorded == 1


def test_chat_stream(client: openai.OpenAI) -> None:
    """A stream replays chunk by chunk, as it was recorded."""
    with client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to three"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "You said: Count to three"
    # The role, one chunk per word, the finish reason, the usage: 8 chunks.
    assert len(chunks) == 8
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


@pytest.mark.anyio
async def test_chat_async(async_client: openai.AsyncOpenAI) -> None:
    """The async client is recorded and replayed the same way."""
    completion = await async_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello from asyncio"}]
    )
    assert completion.choices[0].message.content == "You said: Hello from asyncio"


WEATHER_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def get_weather(city: str) -> str:
    """The tool the model asks for."""
    return f"18°C and sunny in {city}"


def test_tool_call_loop(client: openai.OpenAI) -> None:
    """The model calls a tool, the test answers, the model replies: two recorded calls."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the weather in Paris?"}
    ]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"city": "Paris"}

    # Send back the model's call and the tool's answer; the model then answers the user.
    function = call.function
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": function.name, "arguments": function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": get_weather(**arguments)},
    ]
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "The tool says: 18°C and sunny in Paris"
