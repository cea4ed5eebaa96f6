"""A stream left early closes at once in every mode, and is stored and replayed cut short.

Each client reads a few events of a slow (20 events, 0.5 s apart) or endless (an event every
0.5 s) stream from the fake provider, then leaves it, as a test that checks only the start of
an answer does.
"""

from __future__ import annotations

import re

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette

pytest.importorskip("openai")

SOURCE = """
import asyncio, importlib, os, threading, time, urllib.parse

import pytest

BASE = os.environ["FAKE_URL"] + os.environ["PREFIX"] + "/v1"
QUERY = os.environ["QUERY"]  # the pace of a slow or endless stream
URL = BASE + "/chat/completions" + QUERY
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
READ = int(os.environ["READ"])  # events to read before leaving; 0: read to the end


def with_httpx():
    import httpx

    events = []
    with httpx.Client() as client, client.stream("POST", URL, json=BODY) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(line)
                if len(events) == READ:
                    break
    return events


def with_httpx_async():
    import httpx

    async def run():
        events = []
        async with httpx.AsyncClient() as client:
            async with client.stream("POST", URL, json=BODY) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        events.append(line)
                        if len(events) == READ:
                            break
        return events

    return asyncio.run(run())


def with_openai():
    import openai

    client = openai.OpenAI(
        base_url=BASE,
        api_key="sk-test",
        max_retries=0,
        default_query=dict(urllib.parse.parse_qsl(QUERY.removeprefix("?"))),
    )
    events = []
    with client.chat.completions.create(
        model="m", messages=BODY["messages"], stream=True
    ) as stream:
        for chunk in stream:
            events.append(chunk.choices[0].delta.content)
            if len(events) == READ:
                break
    client.close()
    return events


def with_requests():
    import requests

    events = []
    with requests.Session() as session:
        with session.post(URL, json=BODY, stream=True) as response:
            for line in response.iter_lines():
                if line.startswith(b"data:"):
                    events.append(line)
                    if len(events) == READ:
                        break
    return events


def with_aiohttp():
    import aiohttp

    async def run():
        events = []
        # A replay that waited for ever would fail here instead of hanging.
        timeout = aiohttp.ClientTimeout(sock_read=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(URL, json=BODY) as response:
                async for line in response.content:
                    if line.startswith(b"data:"):
                        events.append(line)
                        if len(events) == READ:
                            break
        return events

    return asyncio.run(run())


def client_threads():
    # The fake provider serves from threads of this same process: those are not the client's.
    return [t for t in threading.enumerate() if "process_request" not in t.name]


@pytest.mark.llm_cache
def test_leave_early():
    client = os.environ["CLIENT"]
    # Imported before the clock starts: an in-process run imports it afresh each time.
    importlib.import_module({"httpx_async": "httpx"}.get(client, client))
    threads = set(client_threads())
    started = time.perf_counter()
    events = globals()["with_" + client]()
    elapsed = time.perf_counter() - started
    print(f"ELAPSED {elapsed:.3f} READ {len(events)}")
    assert len(events) == READ or not READ
    assert not set(client_threads()) - threads, "a thread was left behind"
    # Well under the slow stream's 9.5 s: the client did not wait for the rest.
    assert elapsed < 3, f"leaving the stream took {elapsed:.2f} s"
"""

CLIENTS = ["httpx", "httpx_async", "openai", "requests", "aiohttp"]


def _prepare(suite: Suite, monkeypatch: pytest.MonkeyPatch, client: str, prefix: str) -> None:
    pytest.importorskip({"httpx_async": "httpx"}.get(client, client))
    suite.write("test_stream.py", SOURCE)
    monkeypatch.setenv("CLIENT", client)
    monkeypatch.setenv("PREFIX", prefix)
    monkeypatch.setenv("READ", "1")
    monkeypatch.setenv("QUERY", "?interval=0.5" if prefix else "")


def _elapsed(output: str) -> float:
    match = re.search(r"ELAPSED (\S+)", output)
    assert match, output
    return float(match[1])


def _assert_server_saw_the_client_leave(suite: Suite) -> None:
    (stream,) = suite.provider.streams
    assert stream.path.endswith("?interval=0.5")
    # The wait ends as soon as the server notices; how soon is told by the events it wrote.
    assert stream.client_gone.wait(10), "the connection was left open"
    assert not stream.completed
    # An event every 0.5 s: the server saw the client leave within 3.5 s of the first.
    assert stream.events_sent < 8, f"the server wrote {stream.events_sent} events"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_slow_stream_left_early_is_stored_cut_short_and_replays(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    _prepare(suite, monkeypatch, client, "/slow")
    recorded = suite.run("--llm-cache=record", "-s")
    elapsed = _elapsed(recorded.stdout.str())
    print(f"{client}: left a 20 x 0.5 s stream after one event in {elapsed:.3f} s")
    recorded.assert_outcomes(passed=1)
    _assert_server_saw_the_client_leave(suite)
    ((name, text),) = suite.cassettes().items()
    assert "\n  cut_short: true\n" in text
    assert '\n  response_sse: |\n    data: {"id":' in text
    assert "Echo: hi" not in text, "only the chunk read is stored"
    (entry,) = Cassette.load(suite.path / name)
    assert entry.cut_short
    chunks = entry.to_response().chunks
    assert chunks, "the chunk read is stored"
    assert b'"role":"assistant"' in chunks[0]

    # The same code replays offline...
    suite.run("-s").assert_outcomes(passed=1)
    assert suite.upstream() == 1

    # ... and code that reads further fails, saying how to record the whole stream.
    monkeypatch.setenv("READ", "3")
    replayed = suite.run()
    replayed.assert_outcomes(failed=1)
    output = replayed.stdout.str()
    assert "was cut short" in output
    assert "re-record it: pytest --llm-cache=record 'test_stream.py::test_leave_early'" in output
    assert suite.upstream() == 1


@pytest.mark.parametrize("mode", ["record", "auto"])
@pytest.mark.parametrize("client", CLIENTS)
def test_an_endless_stream_left_early_does_not_hang(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, client: str, mode: str
) -> None:
    _prepare(suite, monkeypatch, client, "/endless")
    recorded = suite.run(f"--llm-cache={mode}", "-s")
    recorded.assert_outcomes(passed=1)
    assert _elapsed(recorded.stdout.str()) < 3
    _assert_server_saw_the_client_leave(suite)
    (text,) = suite.cassettes().values()
    assert "\n  cut_short: true\n" in text
    suite.run("-s").assert_outcomes(passed=1)
    assert suite.upstream() == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stream_read_to_its_end_is_complete(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    # openai stops reading at the [DONE] event and closes the response before the end of
    # the chunked body is read: all of it was received, so the recording is complete.
    _prepare(suite, monkeypatch, client, "")
    monkeypatch.setenv("READ", "0")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "[DONE]" in text
    assert "cut_short" not in text
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1


def test_a_stream_interrupted_by_ctrl_c_is_not_stored(suite: Suite) -> None:
    suite.write(
        "test_interrupted.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_interrupted():
            url = os.environ["FAKE_URL"] + "/slow/v1/chat/completions?events=5&interval=0.2"
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            with httpx.stream("POST", url, json=body) as response:
                for _ in response.iter_bytes():
                    raise KeyboardInterrupt  # Ctrl-C while the stream is read
        """,
    )
    # In a process of its own: the interrupt ends that run, not this one.
    result = suite.pytester.runpytest_subprocess(
        "-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "--llm-cache=record"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    # Leaving a stream is the code's choice; an interrupted run is not: nothing is stored.
    assert all("cut_short" not in text for text in suite.cassettes().values())
