"""WebSocket sessions: the websockets library's asyncio and sync clients and the OpenAI SDK's
Realtime connection, against a Realtime-like server on loopback.

A session is stored message by message, both ways, and replayed by an in-memory peer: the
replay opens no connection, gives the same messages in the same number, and fails naming the
message when the client's messages part from the recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Suite
from fake_realtime import FakeRealtime, start_fake_realtime
from scenarios import API_KEY, Outcome, record_then_replay, run

pytest.importorskip("websockets", reason="the WebSocket scenarios need websockets")

SOURCE = """
REALTIME = os.environ["REALTIME_URL"]
SESSION_KEY = "sk-proj-" + "0123456789abcdefghijklmnop"


def realtime_events(received):
    return [json.loads(m) if isinstance(m, str) else m.hex() for m in received]


def test_websockets_async():
    from websockets.asyncio.client import connect

    async def session():
        received = []
        headers = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "realtime=v1"}
        url = REALTIME + "/realtime?model=fake-rt"
        async with connect(url, additional_headers=headers) as ws:
            received.append(await ws.recv())
            await ws.send(json.dumps({"type": "session.update", "session": {"voice": "x"}}))
            received.append(await ws.recv())
            say = {"instructions": os.environ.get("SAY", "hi there")}
            await ws.send(json.dumps({"type": "response.create", "response": say}))
            async for message in ws:
                received.append(message)
                if json.loads(message)["type"] == "response.done":
                    break
            await ws.send(bytes(range(256)) * 8)
            received.append(await ws.recv())
        return received

    save("async", realtime_events(asyncio.run(session())))


def test_websockets_sync():
    from websockets.sync.client import connect

    received = []
    with connect(REALTIME + "/realtime?model=fake-rt") as ws:
        received.append(ws.recv())
        ws.send(json.dumps({"type": "response.create", "response": {"instructions": "a b c"}}))
        for message in ws:
            received.append(message)
            if json.loads(message)["type"] == "response.done":
                break
        ws.send(b"\\x00\\x01\\xff")
        received.append(ws.recv())
    save("sync", realtime_events(received))


def test_openai_realtime():
    openai = pytest.importorskip("openai")
    if not hasattr(openai.AsyncOpenAI(api_key="x"), "realtime"):
        pytest.skip("this openai has no client.realtime")

    async def session():
        client = openai.AsyncOpenAI(api_key=API_KEY, websocket_base_url=REALTIME)
        events = []
        async with client.realtime.connect(model="fake-rt") as connection:
            brief = {"type": "realtime", "instructions": "be brief"}
            await connection.session.update(session=brief)
            await connection.response.create(response={"instructions": "tell me a story"})
            async for event in connection:
                events.append(event.type)
                if event.type == "response.done":
                    break
        return events

    save("openai", asyncio.run(session()))
"""


class RealtimeSuite(Suite):
    """A user's suite whose tests open WebSocket sessions with the fake Realtime server."""

    def __init__(self, suite: Suite, realtime: FakeRealtime) -> None:
        super().__init__(suite.pytester, suite.provider)
        self.realtime = realtime

    def upstream(self) -> int:
        """Connections the fake server accepted so far."""
        return self.realtime.count()


@pytest.fixture(scope="module")
def realtime() -> Iterator[FakeRealtime]:
    """One fake Realtime server for the module."""
    with start_fake_realtime() as fake:
        yield fake


@pytest.fixture
def realtime_suite(
    suite: Suite, realtime: FakeRealtime, monkeypatch: pytest.MonkeyPatch
) -> RealtimeSuite:
    """A user's suite reaching the fake Realtime server through ``REALTIME_URL``."""
    realtime.reset()
    monkeypatch.setenv("REALTIME_URL", realtime.url)
    return RealtimeSuite(suite, realtime)


@pytest.fixture
def recorded(realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """The scenarios recorded, then replayed with no connection."""
    return record_then_replay(realtime_suite, monkeypatch, SOURCE, tests=3)


def test_sessions_replay_the_same_messages_with_no_connection(recorded: Outcome) -> None:
    recorded.same()
    events = recorded.replayed["async"]
    assert events[0]["type"] == "session.created"
    kinds = [e["type"] for e in events if isinstance(e, dict)]
    assert kinds.count("response.output_text.delta") == 2
    assert events[-1] == (bytes(range(256)) * 8).hex()
    assert recorded.replayed["sync"][-1] == "0001ff"
    if "openai" in recorded.replayed:
        assert recorded.replayed["openai"][-1] == "response.done"


def test_the_file_shows_each_message_and_no_secret(
    recorded: Outcome, realtime_suite: RealtimeSuite
) -> None:
    text = recorded.cassettes["cassettes/test_scenarios/test_websockets_async.yaml"]
    assert 'response_frames:\n  - from: server\n    text: \'{"type": "session.created"' in text
    assert "  - from: client\n    base64: AAECAwQF" in text  # binary kept as it came
    assert "    close: 1000\n" in text
    assert "openai-beta: realtime=v1" in text
    everything = "\n".join(recorded.cassettes.values())
    assert API_KEY not in everything
    # The credential really went to the server while recording.
    assert any(API_KEY in h.get("authorization", "") for h in realtime_suite.realtime.handshakes)


def test_summary_counts_realtime_usage(
    recorded: Outcome, realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(realtime_suite, "-k", "websockets_async")
    # One response.done: 7 input tokens, one output token per word of "hi there".
    result.stdout.fnmatch_lines(["*saved: 9 tokens (7 in, 2 out)*"])


def test_a_changed_client_message_fails_naming_it(
    recorded: Outcome, realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAY", "hi here")
    result = run(realtime_suite, "-k", "websockets_async")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*does not follow its recording: message 4 (sent by the client) differs*",
            '*response.instructions: "hi there" -> "hi here"*',
            "*message:  4*",
            "*re-record it: pytest --llm-cache=record*test_websockets_async*",
        ]
    )
    assert realtime_suite.upstream() == recorded.upstream


def test_a_session_past_the_recording_fails_naming_the_message(
    recorded: Outcome, realtime_suite: RealtimeSuite
) -> None:
    path = realtime_suite.path / "test_scenarios.py"
    source = path.read_text("utf-8")
    # One more message after the binary echo: the recording has no answer for it.
    path.write_text(
        source.replace(
            "        received.append(ws.recv())\n    save(",
            "        received.append(ws.recv())\n        ws.send('one more')\n    save(",
        ),
        "utf-8",
    )
    result = run(realtime_suite, "-k", "websockets_sync")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the client sent a text message as message 13, past the end of the recording*"]
    )


def test_a_session_left_early_fails_naming_the_message(
    recorded: Outcome, realtime_suite: RealtimeSuite
) -> None:
    path = realtime_suite.path / "test_scenarios.py"
    source = path.read_text("utf-8")
    # The client closes before sending its binary message.
    assert 'ws.send(b"\\x00' in source
    path.write_text(
        source.replace(
            '        ws.send(b"\\x00\\x01\\xff")\n        received.append(ws.recv())\n',
            "",
        ),
        "utf-8",
    )
    result = run(realtime_suite, "-k", "websockets_sync")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*the client closed it at message 11, where the recording has the client send a binary*"]
    )


def test_a_key_in_a_client_message_is_refused(
    realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SOURCE.replace('{"voice": "x"}', '{"voice": "x", "api_key": SESSION_KEY}')
    monkeypatch.setenv("SCENARIO_OUT", str(realtime_suite.path / "record"))
    from scenarios import PRELUDE

    realtime_suite.write("test_scenarios.py", PRELUDE + source)
    result = run(realtime_suite, "--llm-cache=record", "-k", "websockets_async")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*holds a value shaped like an API key*"])
    assert "0123456789abcdefghijklmnop" not in "\n".join(realtime_suite.cassettes().values())


AIOHTTP_SOURCE = """
REALTIME = os.environ["REALTIME_URL"]


def test_aiohttp_ws():
    import aiohttp

    async def session():
        received = []
        headers = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "realtime=v1"}
        async with aiohttp.ClientSession() as http:
            url = REALTIME + "/realtime?model=fake-rt"
            async with http.ws_connect(url, headers=headers) as ws:
                received.append(await ws.receive_str())
                say = {"instructions": os.environ.get("SAY", "two words")}
                await ws.send_str(json.dumps({"type": "response.create", "response": say}))
                while True:
                    message = await ws.receive_str()
                    received.append(message)
                    if json.loads(message)["type"] == "response.done":
                        break
                await ws.send_bytes(bytes(range(256)) * 300)
                received.append((await ws.receive_bytes()).hex())
                await ws.send_str("plain text")
                received.append(await ws.receive_str())
                await ws.close()
                received.append(ws.close_code)
        return received

    save("aiohttp", asyncio.run(session()))
"""


@pytest.fixture
def aiohttp_recorded(realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """The aiohttp scenario recorded, then replayed with no connection."""
    pytest.importorskip("aiohttp")
    return record_then_replay(realtime_suite, monkeypatch, AIOHTTP_SOURCE, tests=1)


def test_aiohttp_session_replays_the_same_messages_with_no_connection(
    aiohttp_recorded: Outcome,
) -> None:
    aiohttp_recorded.same()
    received = aiohttp_recorded.replayed["aiohttp"]
    # session.created, response.created, 2 words x 2 deltas, response.done, binary, echo, code.
    assert len(received) == 10
    assert json.loads(received[0])["type"] == "session.created"
    assert received[7] == (bytes(range(256)) * 300).hex()
    assert json.loads(received[8]) == {"type": "echo", "event_id": "evt_echo", "text": "plain text"}
    assert received[-1] == 1000
    text = aiohttp_recorded.cassettes["cassettes/test_scenarios/test_aiohttp_ws.yaml"]
    assert "GET ws://127.0.0.1:" in text
    assert "response_frames:\n  - from: server\n" in text
    assert "  - from: client\n    base64: AAECAwQF" in text
    assert "  - from: client\n    text: plain text\n" in text
    assert "    close: 1000\n" in text
    assert "sec-websocket-key" not in text
    assert API_KEY not in text


def test_aiohttp_changed_client_message_fails_naming_it(
    aiohttp_recorded: Outcome, realtime_suite: RealtimeSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAY", "two birds")
    result = run(realtime_suite, "-k", "aiohttp_ws")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*does not follow its recording: message 2 (sent by the client) differs*",
            '*response.instructions: "two words" -> "two birds"*',
            "*message:  2*",
        ]
    )
    assert realtime_suite.upstream() == aiohttp_recorded.upstream


def test_a_corrupt_frame_in_the_file_is_refused_naming_file_and_line(
    aiohttp_recorded: Outcome, realtime_suite: RealtimeSuite
) -> None:
    name = "cassettes/test_scenarios/test_aiohttp_ws.yaml"
    path = realtime_suite.path / name
    text = path.read_text("utf-8")
    lines = text.splitlines(keepends=True)
    # The client's binary message gets a payload that is not base64.
    number = next(i for i, line in enumerate(lines, 1) if line.startswith("    base64: AAEC"))
    lines[number - 1] = "    base64: not base64!\n"
    path.write_text("".join(lines), "utf-8")
    result = run(realtime_suite, "-k", "aiohttp_ws")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*test_aiohttp_ws.yaml:{number - 1}*base64 is not valid*"])
    assert realtime_suite.upstream() == aiohttp_recorded.upstream
