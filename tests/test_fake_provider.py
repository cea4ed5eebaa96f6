"""Self-test for the fake provider, driven by plain httpx and the real SDKs."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import TYPE_CHECKING

import anthropic
import httpx
import openai
import pytest
import requests
from fake_payloads import embedding_vector
from fake_provider import FakeProvider, PacedStream, start_fake_provider
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


CHAT: dict[str, object] = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
STREAM: dict[str, object] = {**CHAT, "stream": True}


def sse_contents(lines: list[str]) -> str:
    """The chat text carried by streamed ``data:`` lines."""
    text = ""
    for line in lines:
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def hung_up(stream: PacedStream) -> int:
    """Wait for the server to notice the client left and its thread to end; events sent."""
    # Generous timeouts: they only bound a wait that ends as soon as the server notices.
    assert stream.client_gone.wait(10), "the server did not notice the client hung up"
    stream.thread.join(10)
    assert not stream.thread.is_alive()
    assert not stream.completed
    return stream.events_sent


def test_counter_numbers_repeated_requests(fresh: FakeProvider) -> None:
    url = fresh.url + "/counter/v1/chat/completions"
    other = {**CHAT, "messages": [{"role": "user", "content": "other"}]}
    with httpx.Client() as client:

        def content(body: dict[str, object], at: str = url) -> str:
            reply = client.post(at, json=body).json()
            return str(reply["choices"][0]["message"]["content"])

        assert [content(CHAT), content(CHAT), content(other), content(CHAT)] == [
            "Echo: hi (answer #1)",
            "Echo: hi (answer #2)",
            "Echo: other (answer #1)",
            "Echo: hi (answer #3)",
        ]
        assert content(CHAT, fresh.url + "/v1/chat/completions") == "Echo: hi"
        assert content(CHAT, fresh.url + "/gzip/counter/v1/chat/completions") == (
            "Echo: hi (answer #1)"
        )
        streamed = [sse_contents(client.post(url, json=STREAM).text.splitlines()) for _ in range(2)]
        models = [client.get(fresh.url + "/counter/v1/models").json() for _ in range(2)]
        fresh.reset()
        assert content(CHAT) == "Echo: hi (answer #1)", "reset() starts counting again"
    assert streamed == ["Echo: hi (answer #1)", "Echo: hi (answer #2)"]
    assert [m["answer"] for m in models] == [1, 2]
    assert len(models[0]["data"]) == 3


def test_counter_through_the_openai_sdk(fresh: FakeProvider) -> None:
    url = fresh.url + "/counter/v1"
    with openai.OpenAI(api_key="sk-test", base_url=url, max_retries=0) as client:
        replies = [
            client.chat.completions.create(
                model="gpt-fake", messages=[{"role": "user", "content": "hi"}]
            )
            for _ in range(2)
        ]
        stream = client.chat.completions.create(
            model="gpt-fake",
            messages=[{"role": "user", "content": LONG_PROMPT}],
            stream=True,
        )
        with stream:
            joined = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert [r.choices[0].message.content for r in replies] == [
        "Echo: hi (answer #1)",
        "Echo: hi (answer #2)",
    ]
    assert joined == f"Echo: {LONG_PROMPT} (answer #1)"


@pytest.mark.parametrize("query", ["", "?hold=0.25&of=4"])
def test_reverse_answers_simultaneous_requests_last_first(fresh: FakeProvider, query: str) -> None:
    of = 4 if query else 6
    url = fresh.url + "/reverse/v1/chat/completions" + query
    start = threading.Barrier(of)
    finished: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        with httpx.Client() as client:
            start.wait()
            reply = client.post(url, json=CHAT).json()
        with lock:
            finished.append(reply["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=ask) for _ in range(of)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - began
    assert finished == [f"Echo: hi (answer #{n})" for n in range(of, 0, -1)]
    hold = 0.25 if query else 0.08
    assert elapsed >= (of - 1) * hold, "the first arrival is held longest"


def test_reverse_keeps_its_order_when_the_requests_arrive_far_apart(fresh: FakeProvider) -> None:
    # A loaded machine can send "simultaneous" requests far apart: here each one arrives
    # after the earlier ones have waited longer than their whole hold.
    url = fresh.url + "/reverse/v1/chat/completions?hold=0.2&of=3"
    finished: list[str] = []
    lock = threading.Lock()

    def ask() -> None:
        with httpx.Client() as client:
            reply = client.post(url, json=CHAT).json()
        with lock:
            finished.append(reply["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for number, thread in enumerate(threads, 1):
        thread.start()
        while fresh.count() < number:
            time.sleep(0.01)
        time.sleep(0.3)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert finished == [f"Echo: hi (answer #{n})" for n in (3, 2, 1)]


def test_slow_paces_a_stream_and_counts_what_it_wrote(fresh: FakeProvider) -> None:
    url = fresh.url + "/slow/v1/chat/completions?events=6&interval=0.05"
    began = time.monotonic()
    with httpx.Client() as client, client.stream("POST", url, json=STREAM) as response:
        lines = [line for line in response.iter_lines() if line]
    elapsed = time.monotonic() - began
    assert response.headers["content-type"] == "text/event-stream"
    assert len(lines) == 6
    assert lines[-1] == "data: [DONE]"
    assert sse_contents(lines) == "Echo: hi 3 4"
    assert elapsed >= 5 * 0.05
    (stream,) = fresh.streams
    # The client can read the last bytes before the handler records them: wait for it.
    stream.thread.join(5)
    assert not stream.thread.is_alive()
    assert stream.completed
    assert stream.events_sent == 6
    assert not stream.client_gone.is_set()


def test_slow_notices_a_client_that_leaves_early(
    fresh: FakeProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    url = fresh.url + "/slow/v1/chat/completions?events=20&interval=1"
    with httpx.Client() as client, client.stream("POST", url, json=STREAM) as response:
        read: list[str] = []
        for line in response.iter_lines():
            read += [line] if line else []
            if len(read) == 2:
                break
    left = time.monotonic()
    (stream,) = fresh.streams
    # The hang-up is seen during the 1 s pause, before a 3rd event is written, and well
    # before that write: a server that noticed only when a write failed would be later.
    assert hung_up(stream) == 2
    assert stream.gone_at is not None
    assert stream.gone_at - left < 0.5
    assert "Traceback" not in capfd.readouterr().err


def test_slow_and_endless_refuse_what_is_not_a_chat_stream(fresh: FakeProvider) -> None:
    with httpx.Client() as client:
        plain = client.post(fresh.url + "/slow/v1/chat/completions", json=CHAT)
        models = client.get(fresh.url + "/endless/v1/models")
    assert plain.status_code == models.status_code == 400
    assert "streamed chat completions" in plain.json()["error"]["message"]
    assert fresh.streams == []


def test_endless_stops_cleanly_when_the_client_hangs_up(
    fresh: FakeProvider, capfd: pytest.CaptureFixture[str]
) -> None:
    url = fresh.url + "/counter/endless/v1/chat/completions"
    with requests.post(url, json=STREAM, stream=True, timeout=5) as response:
        lines: list[str] = []
        for line in response.iter_lines(decode_unicode=True):
            lines += [line] if line else []
            if len(lines) == 8:
                break
    (stream,) = fresh.streams
    # Its thread has ended: nothing is written after the hang-up.
    assert hung_up(stream) >= 8
    assert sse_contents(lines) == "Echo: hi (answer #1) 3 4 5 6 7 8"
    assert "Traceback" not in capfd.readouterr().err


def test_closing_the_provider_ends_an_endless_stream() -> None:
    provider = start_fake_provider()
    url = provider.url + "/endless/v1/chat/completions"
    with httpx.Client() as client, client.stream("POST", url, json=STREAM) as response:
        lines = response.iter_lines()
        next(lines)
        provider.close()
        (stream,) = provider.streams
        assert stream.client_gone.wait(10)
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in lines:
                pass
    stream.thread.join(10)
    assert not stream.thread.is_alive()
