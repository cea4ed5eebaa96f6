"""Self-test for the fake provider, driven by plain httpx and the real SDKs."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

import anthropic
import httpx
import openai
import pytest
from fake_payloads import embedding_vector
from fake_provider import FakeProvider, start_fake_provider
from openai.types.chat import ChatCompletionMessageFunctionToolCall

if TYPE_CHECKING:
    from collections.abc import Iterator

    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

LONG_PROMPT = "please repeat this fairly long sentence back to me word for word"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    """One server for the module; tests reset it through ``fresh``."""
    with start_fake_provider() as fake:
        yield fake


@pytest.fixture
def fresh(provider: FakeProvider) -> FakeProvider:
    """The shared provider with no recorded requests and no 429 memory."""
    provider.reset()
    return provider


@pytest.fixture
def oai(fresh: FakeProvider) -> Iterator[openai.OpenAI]:
    """An OpenAI client for the fake provider that never retries."""
    with openai.OpenAI(api_key="sk-test", base_url=fresh.url + "/v1", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(fresh: FakeProvider) -> Iterator[anthropic.Anthropic]:
    """An Anthropic client for the fake provider that never retries."""
    with anthropic.Anthropic(api_key="sk-test", base_url=fresh.url, max_retries=0) as client:
        yield client


def test_openai_chat(fresh: FakeProvider, oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Echo: hi"
    assert reply.id.startswith("chatcmpl-")
    assert reply.created == 1767225600
    assert reply.usage is not None
    assert reply.usage.total_tokens == 3
    assert fresh.count("/chat/completions") == 1
    assert fresh.requests[0].headers["authorization"] == "Bearer sk-test"


def test_openai_stream_matches_plain_reply(oai: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": LONG_PROMPT}]
    plain = oai.chat.completions.create(model="gpt-fake", messages=messages)
    stream = oai.chat.completions.create(
        model="gpt-fake", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    with stream:
        chunks = list(stream)
    assert len(chunks) > 2
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert joined == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage


def test_openai_embeddings_default_base64(fresh: FakeProvider, oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="text-embedding-fake", input=["alpha", "beta"])
    assert json.loads(fresh.requests[0].body)["encoding_format"] == "base64"
    assert [d.embedding for d in result.data] == [
        embedding_vector("alpha"),
        embedding_vector("beta"),
    ]


def test_openai_tool_call_round_trip(oai: openai.OpenAI) -> None:
    tool: ChatCompletionToolParam = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object"}},
    }
    ask: ChatCompletionMessageParam = {"role": "user", "content": "weather?"}
    first = oai.chat.completions.create(model="gpt-fake", messages=[ask], tools=[tool])
    assert first.choices[0].finish_reason == "tool_calls"
    call = (first.choices[0].message.tool_calls or [])[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    second = oai.chat.completions.create(
        model="gpt-fake",
        messages=[
            ask,
            {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[tool],
    )
    assert second.choices[0].message.content == "Tool said: sunny"


def test_openai_transcription(oai: openai.OpenAI) -> None:
    result = oai.audio.transcriptions.create(model="whisper-fake", file=("a.wav", b"\r\n" * 50))
    assert result.text == "transcribed 100 bytes"


def test_anthropic_messages(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-fake", max_tokens=32, messages=[{"role": "user", "content": "hello there"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 2


def test_anthropic_messages_stream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-fake", max_tokens=32, messages=[{"role": "user", "content": LONG_PROMPT}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 2
    assert "".join(pieces) == "Echo: " + LONG_PROMPT
    assert final.usage.output_tokens == len(("Echo: " + LONG_PROMPT).split())


def test_gzip_prefix(fresh: FakeProvider) -> None:
    url = fresh.url + "/gzip/v1/chat/completions"
    body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "zip"}]}
    with httpx.Client() as client:
        response = client.post(url, json=body)
        with client.stream("POST", url, json=body) as streamed:
            raw = b"".join(streamed.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["set-cookie"].startswith("__cf_bm=fakecookie123")
    assert response.json()["choices"][0]["message"]["content"] == "Echo: zip"
    assert gzip.decompress(raw) == response.content


def test_flaky_then_sdk_retry(fresh: FakeProvider) -> None:
    url = fresh.url + "/flaky/v1"
    with openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0) as client:
        with pytest.raises(openai.RateLimitError):
            client.models.list()
        assert len(client.models.list().data) == 3
    fresh.reset()
    with openai.OpenAI(api_key="sk-test", base_url=url, max_retries=2) as client:
        reply = client.chat.completions.create(
            model="gpt-fake", messages=[{"role": "user", "content": "again"}]
        )
    assert reply.choices[0].message.content == "Echo: again"
    assert fresh.count("/chat/completions") == 2


def test_determinism_chunked_upload_and_errors(fresh: FakeProvider) -> None:
    payload = {"model": "gpt-fake", "messages": [{"role": "user", "content": "same"}]}
    body = json.dumps({**payload, "stream": True}).encode()
    url = fresh.url + "/v1/chat/completions"
    with httpx.Client() as client:
        first = client.post(url, content=body)
        second = client.post(url, content=iter([body[:10], body[10:]]))
        failed = client.post(fresh.url + "/fail500/v1/chat/completions", content=body)
        missing = client.get(fresh.url + "/v1/nope")
    assert fresh.requests[1].headers["transfer-encoding"] == "chunked"
    assert first.content == second.content
    assert first.content.endswith(b"data: [DONE]\n\n")
    assert first.headers["x-request-id"] == second.headers["x-request-id"]
    assert failed.status_code == 500
    assert missing.status_code == 404
    assert fresh.count() == 4
