"""The decision engine driven directly: replay, record, miss and expiry for one test at a time.

Every test builds the real ``Engine`` and ``TestCache`` over a cassette file in ``tmp_path``
and feeds them ``Request``s as an adapter would; nothing is sent anywhere.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_llmcache import _current
from pytest_llmcache._cassette import Cassette, Entry
from pytest_llmcache._engine import Engine, Recording, TestCache
from pytest_llmcache._errors import CacheRefusal, ReplayMiss
from pytest_llmcache._exchange import Headers, Request, Response
from pytest_llmcache._key import KeyOptions, request_key
from pytest_llmcache._settings import Mode, Settings, TestOptions

URL = "https://api.example.com/v1/chat/completions"
JSON: Headers = (("content-type", "application/json"),)
SSE: Headers = (("content-type", "text/event-stream"),)
NODE = "tests/test_app.py::test_chat"
TEST_ID = "app/tests/test_app.py::test_chat"


def call(prompt: str, *, url: str = URL, headers: Headers = JSON, **more: Any) -> Request:
    """A chat request as an SDK would send it."""
    body = json.dumps({"model": "gpt-x", "prompt": prompt, **more}).encode()
    return Request("POST", url, headers, body)


def answer(text: str, **more: Any) -> bytes:
    """A chat answer that reports its token usage."""
    usage = {"prompt_tokens": 7, "completion_tokens": 3}
    return json.dumps({"model": "gpt-x", "text": text, "usage": usage, **more}).encode()


def key_of(request: Request, options: TestOptions | None = None) -> str:
    options = options or TestOptions()
    return request_key(
        request, KeyOptions(options.ignore_fields, options.match_headers, options.match_api_key)
    )


def stored(
    request: Request,
    text: str,
    *,
    recorded_at: str = "2026-01-01T00:00:00Z",
    ttl: float | None = None,
    test: str | None = TEST_ID,
    cut_short: bool = False,
    duration: float = 1.5,
    status: int = 200,
) -> Entry:
    """An entry as a cassette holds it, answering ``request`` with ``text``."""
    return Entry(
        key=key_of(request),
        recorded_at=recorded_at,
        ttl=ttl,
        duration=duration,
        request={"method": request.method, "url": request.url},
        response={
            "status": status,
            "headers": {"content-type": "application/json"},
            "body": {"json": json.loads(answer(text))},
        },
        test=test,
        cut_short=cut_short,
    )


def write(path: Path, *entries: Entry) -> None:
    cassette = Cassette(path, list(entries))
    cassette.dirty = True
    assert cassette.save()


def age(path: Path, recorded_at: str) -> None:
    """Rewrite every entry of the file as recorded at ``recorded_at``, all else equal."""
    write(
        path,
        *[
            Entry(
                key=e.key,
                recorded_at=recorded_at,
                ttl=e.ttl,
                duration=e.duration,
                request=e.request,
                response=e.response,
                test=e.test,
                cut_short=e.cut_short,
                allow_secrets=e.allow_secrets,
            )
            for e in Cassette.load(path).entries
        ],
    )


def texts(path: Path) -> list[tuple[str | None, str]]:
    """``(owner, answer text)`` of every entry in the file, in file order."""
    return [(e.test, json.loads(e.to_response().body)["text"]) for e in Cassette.load(path).entries]


@pytest.fixture(autouse=True)
def no_running_test() -> Iterator[None]:
    """Each test starts and ends with no test of the cache running."""
    assert _current.running() is None
    yield
    while (running := _current.running()) is not None:
        _current.end(running)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cassettes" / "c.yaml"


def engine_for(mode: Mode, tmp_path: Path, *, strict: bool = False, **kw: Any) -> Engine:
    return Engine(Settings(mode=mode, strict=strict), display_root=tmp_path, **kw)


def begin(
    engine: Engine, path: Path, options: TestOptions | None = None, *, nodeid: str = NODE
) -> TestCache:
    test_id = TEST_ID if nodeid == NODE else nodeid
    return engine.begin(nodeid, options or TestOptions(), str(path), test_id=test_id)


def record(test: TestCache, request: Request, body: bytes, *, status: int = 200) -> Recording:
    """Make ``request`` through ``test``, which must decide to record it, and store ``body``."""
    recording = test.decide(request)
    assert isinstance(recording, Recording)
    recording.add(body)
    recording.finish(status, JSON)
    return recording


def replayed(test: TestCache, request: Request) -> str:
    response = test.decide(request)
    assert isinstance(response, Response)
    text = json.loads(response.body)["text"]
    assert isinstance(text, str)
    return text


# -- record ---------------------------------------------------------------------------------


def test_record_writes_the_call_and_counts_it(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    request = call("hi")
    recording = record(test, request, answer("hello"))
    assert recording.done
    assert recording.key == key_of(request)
    assert recording.occurrence == 0
    assert recording.request is request
    assert recording.raw is request
    assert recording.test is test
    assert test.counts.recorded == 1
    assert test.used == []  # (replayed; a recorded entry counts as used once in its file)
    assert list(test.recorded()) == [(key_of(request), 0)]
    assert not path.exists()  # written when the test ends
    engine.end(test)
    assert texts(path) == [(TEST_ID, "hello")]
    entry = Cassette.load(path).entries[0]
    assert entry.key == key_of(request)
    assert entry.request["url"] == URL
    assert entry.response["status"] == 200
    assert entry.cut_short is False
    assert entry.ttl is None
    assert engine.stats.written == [str(path)]
    assert engine.stats.owned == [str(path)]
    assert engine.stats.counts.recorded == 1
    assert engine.stats.used == {str(path): [key_of(request), 0]}
    assert engine.stats.missed_tests == []


def test_record_stores_the_chunks_as_read(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(ttl=90))
    recording = test.decide(call("hi"))
    assert isinstance(recording, Recording)
    body = answer("hello")
    recording.add(body[:10])
    recording.add(body[10:])
    recording.finish(201, JSON)
    engine.end(test)
    entry = Cassette.load(path).entries[0]
    assert entry.response["status"] == 201
    assert entry.ttl == 90
    assert entry.to_response().body == body
    assert 0 <= entry.duration < 60
    recorded = datetime.strptime(entry.recorded_at, "%Y-%m-%dT%H:%M:%SZ")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    assert abs((now - recorded).total_seconds()) < 60


def test_record_calls_every_time_even_when_stored(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("hi"), "old"))
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    first = test.decide(call("hi"))
    second = test.decide(call("hi"))
    assert isinstance(first, Recording)
    assert isinstance(second, Recording)
    assert (first.occurrence, second.occurrence) == (0, 1)
    first.add(answer("one"))
    second.add(answer("two"))
    # The second answer arrives first: the file keeps the order the calls were made in.
    second.finish(200, JSON)
    first.finish(200, JSON)
    assert test.counts.recorded == 2
    assert test.counts.replayed == 0
    engine.end(test)
    assert texts(path) == [(TEST_ID, "one"), (TEST_ID, "two")]


def test_a_recording_is_stored_once(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    recording = test.decide(call("hi"))
    assert isinstance(recording, Recording)
    assert recording.done is False
    recording.add(answer("hello"))
    recording.finish(200, JSON)
    recording.add(b"more")
    recording.finish(500, JSON)
    assert test.counts.recorded == 1
    assert test.counts.passed_through == 0
    engine.end(test)
    assert texts(path) == [(TEST_ID, "hello")]


def test_a_failed_call_stores_nothing(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    recording = test.decide(call("hi"))
    assert isinstance(recording, Recording)
    recording.add(b"partial")
    recording.finish_failed()
    assert recording.done
    recording.finish(200, JSON)
    assert test.counts.recorded == 0
    assert test.recorded() == {}
    engine.end(test)
    assert not path.exists()
    assert engine.stats.written == []


@pytest.mark.parametrize("status", [429, 500, 503, 599])
def test_transient_statuses_are_not_stored(tmp_path: Path, path: Path, status: int) -> None:
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    record(test, call("hi"), answer("busy"), status=status)
    assert test.counts.passed_through == 1
    assert test.counts.recorded == 0
    assert test.used == []
    engine.end(test)
    assert not path.exists()
    assert engine.stats.counts.passed_through == 1
    assert engine.stats.written == []


@pytest.mark.parametrize("status", [200, 404, 428, 499])
def test_other_statuses_are_stored(tmp_path: Path, path: Path, status: int) -> None:
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    record(test, call("hi"), answer("kept"), status=status)
    assert test.counts.passed_through == 0
    engine.end(test)
    assert Cassette.load(path).entries[0].response["status"] == status


def test_cut_short_recording_replays_and_fails_past_its_end(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    request = call("stream", stream=True)
    recording = test.decide(request)
    assert isinstance(recording, Recording)
    recording.add(b'data: {"n": 1}\n\n')
    recording.add(b'data: {"n": 2}\n\n')
    recording.finish(200, SSE, cut_short=True)
    engine.end(test)
    assert Cassette.load(path).entries[0].cut_short is True

    replay = engine_for(Mode.REPLAY, tmp_path)
    test = begin(replay, path)
    response = test.decide(request)
    assert isinstance(response, Response)
    assert response.body == b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'
    assert response.past_end is not None
    assert test.messages == []
    with pytest.raises(ReplayMiss) as info:
        response.past_end()
    message = str(info.value)
    assert test.messages == [message]
    assert message == (
        f"pytest-llmcache: the recording of POST {URL} was cut short: the stream was left "
        "after 2 chunks when it was recorded, and this run reads past them.\n"
        f"  test:     {NODE}\n"
        f"  cassette: {Path('cassettes') / 'c.yaml'}\n"
        f"  re-record it: pytest --llm-cache=record '{NODE}'"
    )


def test_cut_short_after_one_chunk_says_chunk(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("hi"), "part", cut_short=True))
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    response = test.decide(call("hi"))
    assert isinstance(response, Response)
    assert response.past_end is not None
    with pytest.raises(ReplayMiss, match="was left after 1 chunk when"):
        response.past_end()


def test_a_complete_recording_just_ends(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("hi"), "whole"))
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    response = test.decide(call("hi"))
    assert isinstance(response, Response)
    assert response.past_end is None


# -- replay ---------------------------------------------------------------------------------


def test_replay_serves_the_stored_answer(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "hello", duration=2.25))
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    response = test.decide(request)
    assert isinstance(response, Response)
    assert response.status == 200
    assert ("content-type", "application/json") in response.headers
    assert json.loads(response.body)["text"] == "hello"
    assert test.counts.replayed == 1
    assert test.counts.expired == 0
    assert test.used == [(key_of(request), 0)]
    assert test.messages == []
    assert test.recorded() == {}
    engine.end(test)
    assert engine.stats.counts.replayed == 1
    assert engine.stats.used == {str(path): [key_of(request), 0]}
    assert engine.stats.saved_seconds == 2.25
    assert engine.stats.saved_tokens == {"gpt-x": [7, 3]}
    assert engine.stats.written == []
    assert engine.stats.expired_entries == []
    assert engine.stats.expired_tests == []


def test_replay_counts_the_savings_of_every_replay(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("a"), "one", duration=1.0), stored(call("b"), "two", duration=2.0))
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    assert [replayed(test, call(p)) for p in ("a", "b", "a")] == ["one", "two", "one"]
    engine.end(test)
    assert engine.stats.saved_seconds == 4.0
    assert engine.stats.saved_tokens == {"gpt-x": [21, 9]}


def test_replayed_calls_leave_no_objects_behind(tmp_path: Path, path: Path) -> None:
    # Objects kept for each replayed call would be walked by every later garbage collection
    # of the run, and would bring more of them on: a long replay keeps none.
    requests = [call(f"question {n}") for n in range(301)]
    write(path, *[stored(request, f"answer {n}") for n, request in enumerate(requests)])
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    assert replayed(test, requests[0]) == "answer 0"  # (the file is read)
    gc.collect()
    before = len(gc.get_objects())
    assert [replayed(test, r) for r in requests[1:]] == [f"answer {n}" for n in range(1, 301)]
    gc.collect()
    kept = len(gc.get_objects()) - before
    assert kept < 30, f"{kept} objects kept by 300 replayed calls"
    engine.end(test)
    assert engine.stats.counts.replayed == 301


def test_replay_miss_fails_and_says_how_to_record(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    request = call("hi", url="https://api.example.com/v1/chat?key=secret-value-123")
    with pytest.raises(ReplayMiss) as info:
        test.decide(request)
    message = str(info.value)
    assert test.messages == [message]
    assert test.counts.missed == 1
    assert message == (
        "pytest-llmcache: no recorded response for POST "
        "https://api.example.com/v1/chat?key=<redacted>\n"
        f"  test:     {NODE}\n"
        f"  cassette: {Path('cassettes') / 'c.yaml'} (file does not exist)\n"
        "  mode:     replay (nothing was sent to the network)\n"
        f"  record it: pytest --llm-cache=record '{NODE}'\n"
        f"  or record only what is missing: pytest --llm-cache=auto '{NODE}'"
    )
    engine.end(test)
    assert engine.stats.missed_tests == [NODE]
    assert engine.stats.counts.missed == 1
    assert not path.exists()


@pytest.mark.parametrize(("stored_count", "state"), [(1, "1 entry"), (2, "2 entries")])
def test_replay_miss_names_the_cassette_size_and_nearest(
    tmp_path: Path, path: Path, stored_count: int, state: str
) -> None:
    write(path, *[stored(call(f"other {n}"), "x") for n in range(stored_count)])
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    with pytest.raises(ReplayMiss) as info:
        test.decide(call("hi"))
    message = str(info.value)
    assert f"  cassette: {Path('cassettes') / 'c.yaml'} ({state})\n" in message
    assert f"  nearest recorded request: POST {URL} (entry 1" in message
    assert "\n  mode:     replay" in message


def test_miss_shows_a_path_outside_the_root_in_full(tmp_path: Path) -> None:
    engine = Engine(Settings(), display_root=tmp_path / "elsewhere")
    outside = tmp_path / "c.yaml"
    assert engine.display(outside) == str(outside)
    assert engine.display(tmp_path / "elsewhere" / "a" / "b.yaml") == str(Path("a/b.yaml"))
    test = begin(engine, outside)
    with pytest.raises(ReplayMiss, match=f"cassette: {outside} "):
        test.decide(call("hi"))


def test_display_root_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Engine(Settings()).display(tmp_path / "x" / "c.yaml") == str(Path("x/c.yaml"))


def test_ignored_fields_and_headers_shape_the_key(tmp_path: Path, path: Path) -> None:
    options = TestOptions(ignore_fields=("user",), match_headers=("x-region",))
    request = call("hi", user="alice", headers=(*JSON, ("x-region", "eu")))
    entry = stored(request, "hello")
    entry.key = key_of(request, options)
    write(path, entry)
    test = begin(engine_for(Mode.REPLAY, tmp_path), path, options)
    assert replayed(test, call("hi", user="bob", headers=(*JSON, ("x-region", "eu")))) == "hello"
    with pytest.raises(ReplayMiss):
        test.decide(call("hi", user="bob", headers=(*JSON, ("x-region", "us"))))


def test_match_api_key_shapes_the_key(tmp_path: Path, path: Path) -> None:
    options = TestOptions(match_api_key=True)
    request = call("hi", headers=(*JSON, ("authorization", "Bearer key-number-one")))
    entry = stored(request, "hello")
    entry.key = key_of(request, options)
    write(path, entry)
    test = begin(engine_for(Mode.REPLAY, tmp_path), path, options)
    assert replayed(test, request) == "hello"
    with pytest.raises(ReplayMiss):
        test.decide(call("hi", headers=(*JSON, ("authorization", "Bearer key-number-two"))))


# -- repeated requests ----------------------------------------------------------------------


def test_repeated_requests_replay_in_order_then_the_last_repeats(
    tmp_path: Path, path: Path
) -> None:
    request = call("count")
    write(path, stored(request, "one"), stored(request, "two"))
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    assert [replayed(test, request) for _ in range(4)] == ["one", "two", "two", "two"]
    key = key_of(request)
    assert test.used == [(key, 0), (key, 1), (key, 1), (key, 1)]
    assert test.counts.replayed == 4


def test_auto_records_a_repeat_past_the_last_one(tmp_path: Path, path: Path) -> None:
    request = call("count")
    write(path, stored(request, "one"), stored(request, "two"))
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    assert [replayed(test, request) for _ in range(2)] == ["one", "two"]
    recording = record(test, request, answer("three"))
    assert recording.occurrence == 2
    assert test.counts.replayed == 2
    assert test.counts.recorded == 1
    engine.end(test)
    assert texts(path) == [(TEST_ID, "one"), (TEST_ID, "two"), (TEST_ID, "three")]


def test_auto_records_what_is_missing_and_keeps_the_rest(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("old"), "kept", test="other::test"), stored(call("mine"), "mine"))
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    assert replayed(test, call("old")) == "kept"
    record(test, call("new"), answer("fresh"))
    assert test.counts.missed == 0
    engine.end(test)
    # auto replaces nothing: the test's entry it did not use this time stays.
    assert texts(path) == [("other::test", "kept"), (TEST_ID, "mine"), (TEST_ID, "fresh")]
    assert engine.stats.written == [str(path)]


def test_requests_are_counted_by_their_key(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("a"), "a0"), stored(call("b"), "b0"), stored(call("a"), "a1"))
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    assert [replayed(test, call(p)) for p in "abab"] == ["a0", "b0", "a1", "b0"]


# -- expiry ---------------------------------------------------------------------------------

LONG_AGO = "2000-01-01T00:00:00Z"


def fresh() -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_replay_serves_an_expired_entry_and_counts_it(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "stale", recorded_at=LONG_AGO, ttl=60))
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    assert replayed(test, request) == "stale"
    assert test.counts.expired == 1
    assert test.counts.replayed == 1
    assert test.messages == []
    engine.end(test)
    assert engine.stats.expired_tests == [NODE]
    assert engine.stats.expired_entries == [[str(path), key_of(request), NODE]]
    assert engine.stats.counts.expired == 1


def test_an_entry_within_its_ttl_is_fresh(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "recent", recorded_at=fresh(), ttl=3600))
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    assert replayed(test, request) == "recent"
    assert test.counts.expired == 0
    engine.end(test)
    assert engine.stats.expired_tests == []
    assert engine.stats.expired_entries == []


def test_an_entry_without_ttl_never_expires(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "ancient", recorded_at=LONG_AGO))
    test = begin(engine_for(Mode.AUTO, tmp_path), path)
    assert replayed(test, request) == "ancient"
    assert test.counts.expired == 0


def test_auto_records_an_expired_entry_again(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "stale", recorded_at=LONG_AGO, ttl=60))
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path, TestOptions(ttl=60))
    recording = record(test, request, answer("renewed"))
    assert recording.occurrence == 0
    assert test.counts.replayed == 0
    assert test.counts.expired == 0
    engine.end(test)
    assert texts(path) == [(TEST_ID, "renewed")]
    assert Cassette.load(path).entries[0].recorded_at != LONG_AGO


def test_strict_fails_on_an_expired_entry(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "stale", recorded_at=LONG_AGO, ttl=90))
    engine = engine_for(Mode.REPLAY, tmp_path, strict=True)
    test = begin(engine, path)
    with pytest.raises(ReplayMiss) as info:
        test.decide(request)
    message = str(info.value)
    assert test.messages == [message]
    assert message == (
        f"pytest-llmcache: expired entry for POST {URL} (recorded {LONG_AGO}, ttl 90s) "
        "and --llm-cache-strict is on\n"
        f"  test:     {NODE}\n"
        f"  cassette: {Path('cassettes') / 'c.yaml'}\n"
        f"  refresh it: pytest --llm-cache=auto '{NODE}'"
    )
    assert test.counts.expired == 1
    engine.end(test)
    assert engine.stats.expired_tests == [NODE]


def test_strict_serves_a_fresh_entry(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "recent", recorded_at=fresh(), ttl=3600))
    test = begin(engine_for(Mode.REPLAY, tmp_path, strict=True), path)
    assert replayed(test, request) == "recent"


# -- record mode and shared cassettes -------------------------------------------------------


def test_record_replaces_only_the_tests_own_entries_in_a_shared_cassette(
    tmp_path: Path, path: Path
) -> None:
    write(
        path,
        stored(call("theirs"), "theirs", test="tests/test_b.py::test_b"),
        stored(call("mine old"), "mine old"),
        stored(call("nobody"), "nobody", test=None),
    )
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(cassette="shared"))
    record(test, call("mine new"), answer("mine new"))
    engine.end(test)
    # Entries without an owner may be another test's in a shared file: they stay.
    assert texts(path) == [
        ("tests/test_b.py::test_b", "theirs"),
        (None, "nobody"),
        (TEST_ID, "mine new"),
    ]


def test_record_in_its_own_cassette_drops_unowned_entries(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("old"), "old", test=None), stored(call("mine old"), "mine old"))
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    record(test, call("new"), answer("new"))
    engine.end(test)
    assert texts(path) == [(TEST_ID, "new")]


def test_record_rewrites_a_slot_in_place(tmp_path: Path, path: Path) -> None:
    write(
        path,
        stored(call("x"), "x old"),
        stored(call("theirs"), "theirs", test="other::t"),
        stored(call("y"), "y old"),
    )
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(cassette="shared"))
    record(test, call("y"), answer("y new"))
    record(test, call("x"), answer("x new"))
    engine.end(test)
    assert texts(path) == [(TEST_ID, "x new"), ("other::t", "theirs"), (TEST_ID, "y new")]


def test_recording_the_same_traffic_again_changes_no_byte(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    record(test, call("hi"), answer("same"))
    engine.end(test)
    age(path, LONG_AGO)
    before = path.read_bytes()

    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    record(test, call("hi"), answer("same"))
    engine.end(test)
    assert engine.stats.written == []
    assert path.read_bytes() == before
    assert Cassette.load(path).entries[0].recorded_at == LONG_AGO


def test_the_same_traffic_from_another_test_changes_only_the_owner(
    tmp_path: Path, path: Path
) -> None:
    request = call("hi")
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(cassette="shared"))
    record(test, request, answer("same"))
    engine.end(test)
    age(path, LONG_AGO)

    engine = engine_for(Mode.RECORD, tmp_path)
    other = begin(engine, path, TestOptions(cassette="shared"), nodeid="tests/t.py::test_two")
    record(other, request, answer("same"))
    engine.end(other)
    after = Cassette.load(path).entries
    assert [e.test for e in after] == ["tests/t.py::test_two"]
    assert after[0].recorded_at == LONG_AGO
    assert engine.stats.written == [str(path)]


def test_a_changed_answer_is_stored_with_a_new_time(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "before", recorded_at=LONG_AGO))
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    record(test, request, answer("after"))
    engine.end(test)
    entry = Cassette.load(path).entries[0]
    assert json.loads(entry.to_response().body)["text"] == "after"
    assert entry.recorded_at != LONG_AGO


def test_identical_but_expired_traffic_gets_a_new_time(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(ttl=60))
    record(test, request, answer("same"))
    engine.end(test)
    age(path, LONG_AGO)

    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, TestOptions(ttl=60))
    record(test, request, answer("same"))
    engine.end(test)
    assert Cassette.load(path).entries[0].recorded_at != LONG_AGO
    assert engine.stats.written == [str(path)]


def test_tests_sharing_a_cassette_read_it_once(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("a"), "a"))
    engine = engine_for(Mode.AUTO, tmp_path)
    first = begin(engine, path, TestOptions(cassette="shared"), nodeid="t.py::one")
    assert replayed(first, call("a")) == "a"
    engine.end(first)
    second = begin(engine, path, TestOptions(cassette="shared"), nodeid="t.py::two")
    record(second, call("b"), answer("b"))
    engine.end(second)
    assert engine.cassette(str(path)) is engine.cassette(str(path))
    assert texts(path) == [(TEST_ID, "a"), ("t.py::two", "b")]
    assert engine.stats.owned == [str(path)]
    assert engine.stats.written == [str(path)]
    assert engine.stats.used == {str(path): [key_of(call("a")), 0, key_of(call("b")), 0]}


def test_written_lists_each_cassette_once(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    for name in ("t.py::one", "t.py::two"):
        test = begin(engine, path, TestOptions(cassette="shared"), nodeid=name)
        record(test, call(name), answer(name))
        engine.end(test)
    assert engine.stats.written == [str(path)]
    assert engine.stats.counts.recorded == 2
    assert len(Cassette.load(path)) == 2


def test_on_disk_reads_again_only_when_changed_here(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("a"), "a"))
    engine = engine_for(Mode.AUTO, tmp_path)
    fresh_copy = engine.on_disk(str(path))
    assert texts(fresh_copy.path) == [(TEST_ID, "a")]
    assert fresh_copy is not engine.on_disk(str(path))  # not loaded by a test: read each time
    loaded = engine.cassette(str(path))
    assert engine.on_disk(str(path)) is loaded
    loaded.put(1, stored(call("b"), "b"))
    assert loaded.dirty
    on_disk = engine.on_disk(str(path))
    assert on_disk is not loaded
    assert len(on_disk) == 1


def test_a_parse_cache_changes_no_decision(tmp_path: Path, path: Path) -> None:
    write(path, stored(call("a"), "a"))
    folder = tmp_path / "parsed"
    folder.mkdir()
    engine = engine_for(Mode.AUTO, tmp_path, parse_cache=folder)
    test = begin(engine, path)
    assert replayed(test, call("a")) == "a"
    record(test, call("b"), answer("b"))
    engine.end(test)
    engine = engine_for(Mode.REPLAY, tmp_path, parse_cache=folder)
    test = begin(engine, path)
    assert [replayed(test, call("a")), replayed(test, call("b"))] == ["a", "b"]
    engine.end(test)
    assert texts(path) == [(TEST_ID, "a"), (TEST_ID, "b")]


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.RECORD, Mode.AUTO])
def test_a_damaged_cassette_stops_the_call_in_every_mode(
    tmp_path: Path, path: Path, mode: Mode
) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("entries: [", "utf-8")
    test = begin(engine_for(mode, tmp_path), path)
    with pytest.raises(ReplayMiss) as info:
        test.decide(call("hi"))
    message = str(info.value)
    assert message.startswith(f"pytest-llmcache: {path}")
    assert message.endswith(f"\n  test: {NODE}")
    assert test.messages == [message]


def test_an_unwritable_cassette_fails_the_test_at_its_end(tmp_path: Path) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    path = folder / "c.yaml"
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    record(test, call("hi"), answer("hello"))
    # The folder becomes a file before the test ends: the cassette cannot be written there.
    folder.rmdir()
    folder.write_text("a file where a folder was", "utf-8")
    with pytest.raises(ReplayMiss, match=r"^pytest-llmcache: .*c\.yaml: cannot "):
        engine.end(test)
    assert engine.stats.written == []


def test_a_key_shaped_value_in_the_answer_is_refused(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    leaked = "sk-" + "A1b2C3d4" * 4
    recording = test.decide(call("hi"))
    assert isinstance(recording, Recording)
    recording.add(answer(leaked))
    with pytest.raises(ReplayMiss) as info:
        recording.finish(200, JSON)
    message = str(info.value)
    assert test.messages == [message]
    assert message.startswith(
        f"pytest-llmcache: refusing to write {Path('cassettes') / 'c.yaml'}: "
        f"POST {URL} holds a value shaped like an API key. Nothing was written.\n"
        f"  test: {NODE}\n"
        "  where: response.body.json.text\n"
        "  value: sk-A1b...",
    )
    assert leaked not in message
    assert test.counts.recorded == 0
    engine.end(test)
    assert not path.exists()


def test_an_allowed_key_shaped_value_is_stored(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    example = "sk-proj-EXAMPLE" + "0" * 20
    test = begin(engine, path, TestOptions(allow_secrets=("sk-proj-EXAMPLE*",)))
    record(test, call("hi"), answer(example))
    engine.end(test)
    assert texts(path) == [(TEST_ID, example)]
    assert Cassette.load(path).entries[0].allow_secrets == ("sk-proj-EXAMPLE*",)


def test_credentials_seen_in_the_run_are_scrubbed_from_later_answers(
    tmp_path: Path, path: Path
) -> None:
    token = "plain-token-12345"
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path, nodeid="t.py::login")
    record(test, call("login", headers=(*JSON, ("authorization", f"Bearer {token}"))), answer("ok"))
    engine.end(test)
    test = begin(engine, path, nodeid="t.py::echo")
    record(test, call("echo"), answer(f"your token is {token}"))
    engine.end(test)
    assert token not in path.read_text("utf-8")
    assert texts(path)[-1] == ("t.py::echo", "your token is <redacted>")
    assert token in engine.learn_secrets(call("nothing"))


def test_the_normalize_hook_shapes_the_key_and_the_stored_request(
    tmp_path: Path, path: Path
) -> None:
    token = "plain-token-67890"

    def drop_auth_and_user(request: Request) -> Request:
        headers = tuple((k, v) for k, v in request.headers if k != "authorization")
        body = json.loads(request.body)
        body.pop("user", None)
        return Request(request.method, request.url, headers, json.dumps(body).encode())

    raw = call("hi", user="alice", headers=(*JSON, ("authorization", f"Bearer {token}")))
    engine = engine_for(Mode.RECORD, tmp_path, normalize=drop_auth_and_user)
    assert engine.normalize(raw) == drop_auth_and_user(raw)
    test = begin(engine, path)
    recording = record(test, raw, answer(f"echo {token}"))
    assert recording.raw is raw
    assert recording.request == drop_auth_and_user(raw)
    assert recording.key == key_of(drop_auth_and_user(raw))
    engine.end(test)
    # The credential of the raw request is scrubbed, though the hook removed it.
    assert texts(path) == [(TEST_ID, "echo <redacted>")]

    replay = engine_for(Mode.REPLAY, tmp_path, normalize=drop_auth_and_user)
    test = begin(replay, path)
    assert replayed(test, call("hi", user="bob")) == "echo <redacted>"


def test_without_a_hook_requests_are_used_as_made(tmp_path: Path) -> None:
    request = call("hi")
    assert engine_for(Mode.REPLAY, tmp_path).normalize(request) is request


def test_refuse_fails_the_test_with_the_message(tmp_path: Path, path: Path) -> None:
    test = begin(engine_for(Mode.REPLAY, tmp_path), path)
    with pytest.raises(CacheRefusal) as info:
        test.refuse("pytest-llmcache: blocked")
    assert str(info.value) == "pytest-llmcache: blocked"
    assert test.messages == ["pytest-llmcache: blocked"]


@pytest.mark.parametrize("mode", [Mode.REPLAY, Mode.RECORD])
def test_a_call_around_the_cache_fails_in_every_mode(
    tmp_path: Path, path: Path, mode: Mode
) -> None:
    test = begin(engine_for(mode, tmp_path), path)
    with pytest.raises(ReplayMiss) as info:
        test.bypassed("GET", "https://user:pw@api.example.com/v1/models", "mypkg.Transport")
    message = str(info.value)
    assert test.messages == [message]
    assert message.startswith(
        "pytest-llmcache: GET https://api.example.com/v1/models went around the "
        "cache: it was sent through mypkg.Transport, a transport"
    )
    assert f"\n  test: {NODE}\n  fix: give the client an httpx.HTTPTransport" in message


# -- the test's identity and lifetime --------------------------------------------------------


def test_begin_and_end_make_the_test_the_running_one(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    assert _current.current() is test
    assert _current.running() is test
    assert test.cassette_path == path
    assert test.path == path
    assert test.nodeid == NODE
    assert test.test_id == TEST_ID
    assert test.mode is Mode.REPLAY
    assert test.engine is engine
    engine.end(test)
    assert _current.current() is None


def test_ending_another_test_leaves_the_running_one(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.REPLAY, tmp_path)
    first = begin(engine, path, nodeid="t.py::one")
    second = begin(engine, tmp_path / "other.yaml", nodeid="t.py::two")
    assert _current.current() is second
    engine.end(first)
    assert _current.current() is second
    engine.end(second)
    assert _current.current() is None
    assert engine.stats.owned == [str(path), str(tmp_path / "other.yaml")]


def test_the_test_id_defaults_to_the_node_id(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = engine.begin("t.py::test_x", TestOptions(), str(path))
    assert test.test_id == "t.py::test_x"
    record(test, call("hi"), answer("hello"))
    engine.end(test)
    assert texts(path) == [("t.py::test_x", "hello")]


def test_the_run_has_an_id(tmp_path: Path) -> None:
    first = Engine(Settings())
    second = Engine(Settings())
    assert len(first.run_id) == 32
    assert first.run_id != second.run_id
    assert Engine(Settings(), run_id="abc").run_id == "abc"
    assert first.settings == Settings()


def test_a_test_that_neither_replays_nor_records_writes_nothing(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.AUTO, tmp_path)
    test = begin(engine, path)
    engine.end(test)
    assert not path.exists()
    assert engine.stats.used == {}
    assert engine.stats.written == []
    assert engine.stats.owned == [str(path)]


def test_counts_add_up_within_a_test(tmp_path: Path, path: Path) -> None:
    write(
        path,
        stored(call("a"), "a", recorded_at=LONG_AGO, ttl=60),
        stored(call("b"), "b", recorded_at=LONG_AGO, ttl=60),
    )
    engine = engine_for(Mode.REPLAY, tmp_path)
    test = begin(engine, path)
    assert [replayed(test, call("a")), replayed(test, call("b"))] == ["a", "b"]
    for prompt in ("x", "y"):
        with pytest.raises(ReplayMiss):
            test.decide(call(prompt))
    assert (test.counts.replayed, test.counts.expired, test.counts.missed) == (2, 2, 2)
    assert len(test.messages) == 2
    engine.end(test)
    assert engine.stats.missed_tests == [NODE]
    assert engine.stats.expired_tests == [NODE]
    assert len(engine.stats.expired_entries) == 2


def test_transient_answers_are_counted_each(tmp_path: Path, path: Path) -> None:
    test = begin(engine_for(Mode.RECORD, tmp_path), path)
    record(test, call("a"), b"busy", status=429)
    record(test, call("a"), b"down", status=503)
    assert test.counts.passed_through == 2


def test_store_keeps_a_whole_answer_by_default(tmp_path: Path, path: Path) -> None:
    engine = engine_for(Mode.RECORD, tmp_path)
    test = begin(engine, path)
    recording = test.decide(call("hi"))
    assert isinstance(recording, Recording)
    test.store(recording, 200, JSON, [answer("whole")])
    engine.end(test)
    assert Cassette.load(path).entries[0].cut_short is False
    assert texts(path) == [(TEST_ID, "whole")]


def test_a_miss_compares_with_the_nearest_as_the_key_does(tmp_path: Path, path: Path) -> None:
    options = TestOptions(ignore_fields=("user",), match_headers=("x-region",))
    request = call("hi", user="alice", headers=(*JSON, ("x-region", "eu")))
    entry = stored(request, "hello")
    entry.request = {
        "method": "POST",
        "url": URL,
        "headers": {"content-type": "application/json", "x-region": "eu"},
        "body": {"json": {"model": "gpt-x", "prompt": "hi", "user": "alice"}},
    }
    entry.key = key_of(request, options)
    write(path, entry)
    test = begin(engine_for(Mode.REPLAY, tmp_path), path, options)
    with pytest.raises(ReplayMiss) as info:
        test.decide(call("hello", user="bob", headers=(*JSON, ("x-region", "us"))))
    nearest = str(info.value).split("  differs in:")[1].split("  mode:")[0]
    assert "prompt" in nearest
    assert "x-region" in nearest
    # An ignored field is not a difference; a header the key does not match is not either.
    assert "user" not in nearest
    test = begin(engine_for(Mode.REPLAY, tmp_path), path, TestOptions(ignore_fields=("user",)))
    with pytest.raises(ReplayMiss) as info:
        test.decide(call("hello", user="bob", headers=(*JSON, ("x-region", "us"))))
    assert "x-region" not in str(info.value).split("  differs in:")[1]


def test_a_zero_ttl_shows_as_zero(tmp_path: Path, path: Path) -> None:
    request = call("hi")
    write(path, stored(request, "stale", recorded_at=LONG_AGO, ttl=0))
    test = begin(engine_for(Mode.REPLAY, tmp_path, strict=True), path)
    with pytest.raises(ReplayMiss, match=r"\(recorded 2000-01-01T00:00:00Z, ttl 0s\)"):
        test.decide(request)
