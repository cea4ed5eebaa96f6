"""The drift report: each re-recorded entry compared with what its cassette held before.

Real SDK and httpx traffic against the fake provider: ``/counter`` makes the same request
get another answer on the next run, ``ignore_fields`` lets a request differ in a field that
only changes the ids, and a normalize hook lets one key meet another route (a new status).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import Suite

from pytest_llmcache._capture import make_entry
from pytest_llmcache._drift import Drift, classify
from pytest_llmcache._entry import Entry
from pytest_llmcache._exchange import Request
from pytest_llmcache._settings import resolve_settings
from pytest_llmcache._stats import RunStats

pytest.importorskip("openai", reason="the drift scenarios use the openai SDK")

CHAT = """
import os, openai, pytest

def client():
    base = os.environ["FAKE_URL"] + os.environ.get("PREFIX", "") + "/v1"
    return openai.OpenAI(api_key="test-secret-key-0123456789", base_url=base, max_retries=0)

@pytest.mark.llm_cache(ignore_fields=["user", "stream_options"])
def test_chat():
    reply = client().chat.completions.create(
        model="gpt-fake",
        messages=[{"role": "user", "content": "hi"}],
        user=os.environ.get("RUN", "first"),
    )
    assert reply.choices[0].message.content.startswith("Echo: hi")

@pytest.mark.llm_cache(ignore_fields=["user", "stream_options"])
def test_stream():
    options = {"include_usage": True} if os.environ.get("USAGE") else None
    stream = client().chat.completions.create(
        model="gpt-fake",
        messages=[{"role": "user", "content": "tell me more"}],
        stream=True,
        stream_options=options,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("Echo: tell me more")
"""


def record(suite: Suite, *args: str) -> pytest.RunResult:
    result = suite.run("--llm-cache=record", "-p", "no:randomly", *args)
    return result


def test_a_first_recording_is_new_and_the_same_answers_again_unchanged(suite: Suite) -> None:
    suite.write("test_chat.py", CHAT)
    first = record(suite)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(
        ["drift: 2 new, 0 unchanged, 0 volatile only, 0 answer changed, 0 shape changed"]
    )
    again = record(suite)
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(
        ["drift: 0 new, 2 unchanged, 0 volatile only, 0 answer changed, 0 shape changed"]
    )
    assert "changed: test_chat.py" not in again.stdout.str()


def test_a_changed_answer_is_listed_with_its_test_and_diff(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_chat.py", CHAT)
    monkeypatch.setenv("PREFIX", "/counter")  # the n-th identical request answers "#n"
    record(suite).assert_outcomes(passed=2)
    result = record(suite, "--llm-cache-report=report.json")
    result.assert_outcomes(passed=2)
    assert result.ret == 0  # reported, not failed, without --llm-cache-fail-on-drift
    result.stdout.fnmatch_lines(
        [
            "drift: 0 new, 0 unchanged, 0 volatile only, 2 answer changed, 0 shape changed",
            "  answer changed: test_chat.py::test_chat (cassettes/test_chat/test_chat.yaml *)",
            '    choices[0].message.content: "Echo: hi (answer #1)" -> "Echo: hi (answer #2)"',
            "  answer changed: test_chat.py::test_stream (*)",
            # The stream is compared as its joined deltas, not event by event.
            '    choices[[]0].delta.content: "Echo: tell me more (answer #1)" -> "*(answer #2)"',
        ]
    )
    report = json.loads((suite.path / "report.json").read_text())
    assert report["drift"]["counts"] == {
        "new": 0,
        "unchanged": 0,
        "volatile": 0,
        "answer": 2,
        "shape": 0,
    }
    chat = report["drift"]["changed"][0]
    assert chat["test"] == "test_chat.py::test_chat"
    assert chat["kind"] == "answer"
    assert chat["cassette"].endswith("test_chat.yaml")
    assert chat["diff"] == (
        'choices[0].message.content: "Echo: hi (answer #1)" -> "Echo: hi (answer #2)"'
    )
    assert chat["key"] in (suite.path / chat["cassette"]).read_text()


def test_new_ids_alone_are_volatile(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.write("test_chat.py", CHAT)
    record(suite, "test_chat.py::test_chat").assert_outcomes(passed=1)
    # Another "user" (left out of the key): the provider answers the same text with a new
    # completion id and request id.
    monkeypatch.setenv("RUN", "second")
    result = record(suite, "test_chat.py::test_chat", "--llm-cache-fail-on-drift")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["drift: 0 new, 0 unchanged, 1 volatile only, 0 answer changed, 0 shape changed"]
    )
    assert "changed: test_chat.py::test_chat" not in result.stdout.str()


def test_a_stream_with_new_keys_is_a_shape_change(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_chat.py", CHAT)
    record(suite, "test_chat.py::test_stream").assert_outcomes(passed=1)
    monkeypatch.setenv("USAGE", "1")  # the stream now ends with a usage event
    result = record(suite, "test_chat.py::test_stream")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "drift: 0 new, 0 unchanged, 0 volatile only, 0 answer changed, 1 shape changed",
            "  shape changed: test_chat.py::test_stream (*)",
            "    keys: added usage",
        ]
    )


STATUS = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_route():
    url = os.environ["FAKE_URL"] + os.environ.get("ROUTE", "/v1/chat/completions")
    body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(url, json=body)
"""

SAME_KEY = """
import dataclasses

def pytest_llm_cache_normalize_request(request):
    # Both routes are one call to the cache: what the provider answers may change.
    return dataclasses.replace(request, url=request.url.replace("/v1/gone", "/v1/chat/completions"))
"""


def test_a_new_status_is_a_shape_change_and_fails_the_run_on_request(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("conftest.py", SAME_KEY)
    suite.write("test_status.py", STATUS)
    record(suite).assert_outcomes(passed=1)
    monkeypatch.setenv("ROUTE", "/v1/gone")  # the provider now answers 404
    result = record(suite, "--llm-cache-fail-on-drift")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "drift: 0 new, 0 unchanged, 0 volatile only, 0 answer changed, 1 shape changed",
            "  shape changed: test_status.py::test_route (*)",
            "    status: 200 -> 404; keys: added error*",
            "--llm-cache-fail-on-drift: 1 changed entries fail the run",
        ]
    )


def test_the_ini_option_fails_a_changed_answer(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_chat.py", CHAT)
    monkeypatch.setenv("PREFIX", "/counter")
    record(suite, "test_chat.py::test_chat").assert_outcomes(passed=1)
    suite.write("pytest.ini", "[pytest]\nllm_cache_fail_on_drift = true\n")
    result = record(suite, "test_chat.py::test_chat")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*1 answer changed*", "--llm-cache-fail-on-drift: 1 *"])


def test_auto_compares_an_expired_entry_with_its_refresh(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_chat.py", CHAT)
    monkeypatch.setenv("PREFIX", "/counter")
    record(suite, "test_chat.py::test_chat").assert_outcomes(passed=1)
    path = suite.path / "cassettes" / "test_chat" / "test_chat.yaml"
    text = path.read_text()
    # Recorded long ago with a one-hour ttl: auto refreshes it.
    text = text.replace(
        "  recorded_at: '", "  ttl: 3600\n  recorded_at: '2001-01-01T00:00:00Z'\n#'"
    )
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    result = suite.run("--llm-cache=auto", "test_chat.py::test_chat", "--llm-cache-fail-on-drift")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["drift: 0 new, 0 unchanged, 0 volatile only, 1 answer changed*"])


# -- the classifier on its own ---------------------------------------------------------------


def entry(
    events: list[object] | None = None,
    *,
    body: object = None,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (),
    named: bool = False,
) -> Entry:
    """A recorded response: JSON ``body``, or a stream of ``events`` (one chunk each)."""
    request = Request("POST", "https://api.example/v1/chat", (), b"{}")
    if events is not None:
        chunks = [
            (f"event: {e['type']}\n" if named and isinstance(e, dict) else "").encode()
            + f"data: {json.dumps(e)}\n\n".encode()
            for e in events
        ]
        kind = "text/event-stream"
    else:
        chunks = [json.dumps(body).encode()]
        kind = "application/json"
    return make_entry(
        key="k",
        request=request,
        status=status,
        headers=(("content-type", kind), *headers),
        chunks=chunks,
        match_headers=(),
        ttl=None,
        duration=0.1,
        now=datetime.now(timezone.utc),
        secrets=(),
    )


def deltas(*pieces: str, finish: str = "stop", cid: str = "c1") -> list[object]:
    return [
        *({"id": cid, "choices": [{"delta": {"content": p}}]} for p in pieces),
        {"id": cid, "choices": [{"delta": {}, "finish_reason": finish}]},
        "[DONE]",
    ]


def message(text: str, **more: object) -> dict[str, object]:
    return {"id": "a", "choices": [{"message": {"content": text}, "finish_reason": "stop"}], **more}


def anthropic(*pieces: str, ping: bool = True) -> list[object]:
    events: list[object] = [{"type": "message_start", "message": {"id": "m1"}}]
    if ping:
        events.append({"type": "ping"})
    events += [
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": p}} for p in pieces
    ]
    return [*events, {"type": "message_stop"}]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            entry(deltas("Hel", "lo")),
            entry(deltas("H", "ell", "o")),
            Drift("unchanged"),
            id="rechunked",
        ),
        pytest.param(
            entry(deltas("Hello")),
            entry(deltas("Hello", cid="c2"), headers=(("x-request-id", "r2"),)),
            Drift("volatile", "only id, headers.x-request-id"),
            id="stream-ids",
        ),
        pytest.param(
            entry(deltas("Hello")),
            entry(deltas("Hello", finish="length")),
            Drift("answer", 'choices[0].finish_reason: "stop" -> "length"'),
            id="finish-reason",
        ),
        pytest.param(
            # Some providers end with a usage event whose choice has a null finish reason:
            # a later null does not undo the value an earlier event sent.
            entry([*deltas("Hi")[:-1], {"choices": [{"finish_reason": None}]}]),
            entry([*deltas("Hi", finish="length")[:-1], {"choices": [{"finish_reason": None}]}]),
            Drift("answer", 'choices[0].finish_reason: "stop" -> "length"'),
            id="finish-then-null",
        ),
        pytest.param(
            entry(body=message("Hi", usage={"total_tokens": 3}, created=1)),
            entry(body=message("Hi", usage={"total_tokens": 5}, created=2)),
            Drift("volatile", "only created, usage.total_tokens"),
            id="usage-same-text",
        ),
        pytest.param(
            entry(body=message("Hi", usage={"total_tokens": 3})),
            entry(body=message("Hello there", usage={"total_tokens": 5})),
            Drift("answer", 'choices[0].message.content: "Hi" -> "Hello there"'),
            id="usage-new-text",
        ),
        pytest.param(
            entry(body={"tool": {"name": "a", "arguments": '{"x": 1}'}}),
            entry(body={"tool": {"name": "b", "arguments": '{"x": 2}'}}),
            Drift(
                "answer", 'tool.arguments: "{\\"x\\": 1}" -> "{\\"x\\": 2}"; tool.name: "a" -> "b"'
            ),
            id="tool-call",
        ),
        pytest.param(
            entry(anthropic("Hi", " there"), named=True),
            entry(anthropic("Hi there", ping=False), named=True),
            Drift("shape", "event types: removed ping"),
            id="event-types",
        ),
        pytest.param(
            entry(body=message("Hi")),
            entry(deltas("Hi")),
            Drift(
                "shape", "content-type: application/json -> text/event-stream; body: json -> stream"
            ),
            id="json-to-stream",
        ),
        pytest.param(
            entry(body=message("Hi")),
            entry(body=message("Hi"), status=201),
            Drift("shape", "status: 200 -> 201"),
            id="status",
        ),
    ],
)
def test_classify(old: Entry, new: Entry, expected: Drift) -> None:
    assert classify(old, new) == expected


def test_no_previous_entry_is_new() -> None:
    assert classify(None, entry(body=message("Hi"))) == Drift(
        "new", "POST https://api.example/v1/chat"
    )


def test_drift_records_add_up_across_xdist_workers() -> None:
    one, two = RunStats(), RunStats()
    one.drift.append(["t.py::a", "c.yaml", "k1", "answer", "x: 1 -> 2"])
    two.drift.append(["t.py::b", "c.yaml", "k2", "new", ""])
    one.merge(RunStats.from_json(json.loads(json.dumps(two.to_json()))))
    assert [r[2] for r in one.drift] == ["k1", "k2"]


@pytest.mark.parametrize(
    ("cli", "ini", "expected"),
    [
        pytest.param(False, {}, False, id="default"),
        pytest.param(False, {"llm_cache_fail_on_drift": True}, True, id="ini"),
        pytest.param(True, {"llm_cache_fail_on_drift": False}, True, id="cli-over-ini"),
        pytest.param(True, {}, True, id="cli"),
    ],
)
def test_fail_on_drift_precedence(cli: bool, ini: dict[str, object], expected: bool) -> None:
    resolved = resolve_settings(
        cli_mode="record",
        cli_strict=False,
        cli_dir=None,
        env={},
        ini=ini,
        rootpath=Path("/project"),
        cli_fail_on_drift=cli,
    )
    assert resolved.fail_on_drift is expected


def test_workers_drift_adds_up_in_one_summary(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    suite.write("test_chat.py", CHAT)
    monkeypatch.setenv("PREFIX", "/counter")
    record(suite, "-p", "xdist", "-n", "2").assert_outcomes(passed=2)
    result = record(suite, "-p", "xdist", "-n", "2", "--llm-cache-fail-on-drift")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["drift: 0 new, 0 unchanged, 0 volatile only, 2 answer changed, 0 shape changed"]
    )
