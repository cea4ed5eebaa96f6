"""The openai SDK on its default paths (httpx2 in v3, httpx in v2) and on aiohttp.

Chat completions, the Responses API, embeddings (base64 by default), a three-turn tool-call
agent loop, image input and a multipart audio upload: recorded once, replayed offline.
"""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

openai = pytest.importorskip("openai", reason="the openai scenarios need the openai SDK")

SOURCE = """
import base64

import openai

TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_weather", "get_time")
]
IMAGE = "data:image/png;base64," + base64.b64encode(bytes(range(64))).decode()


def client():
    return openai.OpenAI(api_key=API_KEY, base_url=URL + "/v1", max_retries=2)


def async_client(**options):
    return openai.AsyncOpenAI(api_key=API_KEY, base_url=URL + "/v1", **options)


def test_chat_raw_response():
    raw = client().chat.completions.with_raw_response.create(model="gpt-fake", messages=MESSAGES)
    save("chat", [raw.parse().model_dump(), raw.headers["x-llm-cache-status"]])

    async def run():
        create = async_client().chat.completions.with_raw_response.create
        return await create(model="gpt-fake", messages=MESSAGES)

    replies = [raw, asyncio.run(run())]
    save("chat_elapsed", [reply.elapsed.total_seconds() >= 0 for reply in replies])


def test_chat_stream():
    stream = client().chat.completions.create(
        model="gpt-fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    save("chat_stream", [chunk.model_dump() for chunk in stream])


def test_chat_async_stream():
    async def run():
        stream = await async_client().chat.completions.create(
            model="gpt-fake", messages=MESSAGES, stream=True
        )
        return [chunk.model_dump() async for chunk in stream]

    save("chat_async_stream", asyncio.run(run()))


def test_responses():
    response = client().responses.create(model="gpt-fake", input="hello responses")
    save("responses", [response.output_text, response.usage.model_dump()])


def test_responses_stream():
    events = client().responses.create(model="gpt-fake", input="stream this", stream=True)
    save("responses_stream", [event.model_dump() for event in events])


def test_responses_stream_helper_async():
    async def run():
        async with async_client().responses.stream(model="gpt-fake", input="helper") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            return deltas, (await stream.get_final_response()).output_text

    save("responses_stream_helper_async", asyncio.run(run()))


def test_embeddings_base64_default():
    result = client().embeddings.create(model="text-embedding-fake", input=["a", "b"])
    save("embeddings", [item.embedding for item in result.data])


def test_agent_loop():
    messages = [{"role": "user", "content": "weather and time in Paris?"}]
    turns = []
    while len(turns) < 5:
        choice = client().chat.completions.create(
            model="gpt-fake", messages=messages, tools=TOOLS
        ).choices[0]
        calls = choice.message.tool_calls or []
        names = [c.function.name for c in calls]
        turns.append([choice.finish_reason, names, choice.message.content])
        if not calls:
            break
        messages.append(choice.message.model_dump(exclude_none=True))
        for call in calls:
            answer = "sunny" if call.function.name == "get_weather" else "noon"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": answer})
    save("agent_loop", turns)


def test_image_input():
    content = [
        {"type": "text", "text": "what is in this picture"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
    ]
    reply = client().chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": content}]
    )
    save("image_input", reply.choices[0].message.content)


def test_audio_transcription():
    # Two uploads: each multipart body has its own random boundary.
    audio = ("clip.wav", b"RIFF" + bytes(range(256)) * 4, "audio/wav")
    texts = [client().audio.transcriptions.create(model="whisper-fake", file=audio).text]
    texts.append(client().audio.transcriptions.create(model="whisper-fake", file=audio).text)
    save("audio_transcription", texts)


def test_aiohttp_client():
    try:
        http_client = openai.DefaultAioHttpClient()
    except Exception as exc:  # openai 2 needs the openai[aiohttp] extra for this client
        pytest.skip(f"DefaultAioHttpClient is not available: {exc}")

    async def run():
        async with async_client(http_client=http_client) as aio:
            reply = await aio.chat.completions.create(model="gpt-fake", messages=MESSAGES)
            stream = await aio.chat.completions.create(
                model="gpt-fake", messages=MESSAGES, stream=True
            )
            return reply.model_dump(), [chunk.model_dump() async for chunk in stream]

    save("aiohttp_client", asyncio.run(run()))
"""

NAMES = (
    "chat_stream",
    "chat_async_stream",
    "responses",
    "responses_stream",
    "responses_stream_helper_async",
    "embeddings",
    "agent_loop",
    "image_input",
    "audio_transcription",
)


def test_openai_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=11)
    recorded, replayed = outcome.recorded, outcome.replayed
    outcome.same(*NAMES)
    assert [recorded["chat"][1], replayed["chat"][1]] == ["MISS", "HIT"]
    assert replayed["chat"][0] == recorded["chat"][0]
    assert replayed["chat_elapsed"] == [True, True]

    chunks = replayed["chat_stream"]
    assert len(chunks) == 6
    assert chunks[-1]["usage"]["total_tokens"] > 0
    events = [e["type"] for e in replayed["responses_stream"]]
    assert events[0] == "response.created"
    assert events[-1] == "response.completed"
    assert events.count("response.output_text.delta") == 1
    assert replayed["responses"][0] == "Echo: hello responses"
    assert replayed["responses_stream_helper_async"] == [["Echo: helper"], "Echo: helper"]

    vectors = replayed["embeddings"]
    assert len(vectors) == 2
    assert all(len(v) == 4 for v in vectors)

    turns = replayed["agent_loop"]
    assert [t[1] for t in turns] == [["get_weather"], ["get_time"], []]
    assert turns[-1] == ["stop", [], "Tool said: noon"]
    assert replayed["image_input"] == "Echo: what is in this picture [image]"
    assert replayed["audio_transcription"] == ["transcribed 1028 bytes"] * 2

    if "aiohttp_client" in recorded:
        outcome.same("aiohttp_client")
        assert len(replayed["aiohttp_client"][1]) == len(chunks) - 1  # no usage chunk
    else:
        assert openai.__version__.startswith(("0.", "1.", "2.")), "openai 3 has the client"
    # The random multipart boundaries do not reach the key: one key, answered twice.
    cassette = outcome.cassettes["cassettes/test_scenarios/test_audio_transcription.yaml"]
    keys = [line for line in cassette.splitlines() if line.startswith("- key: ")]
    assert len(keys) == 2
    assert keys[0] == keys[1]
