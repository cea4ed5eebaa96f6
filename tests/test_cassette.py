"""The cassette file: round trips, stable text, atomic writes, the parse cache, bad files."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cassette_samples import write_v1_cassette
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmcache import _cassette, _yaml
from pytest_llmcache._body import encode_body, encode_chunks
from pytest_llmcache._cassette import (
    CASSETTE_VERSION,
    Cassette,
    CassetteError,
    Change,
    Entry,
    read_text,
    validate,
)
from pytest_llmcache._exchange import Response

STREAM = (
    b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\ndata: [DONE]\n\n',
    b'data: {"choices":[{"delta":{"content":"\xc3',  # a character cut in two
    b'\xa9"}}]}\n\n',
)

RESPONSES = [
    Response(
        200,
        (("content-type", "application/json"), ("x-request-id", "req_1")),
        (b'{"id":"chatcmpl-1","choices":[{"message":{"content":"Hi \xe2\x9c\x93"}}]}',),
    ),
    Response(200, (("content-type", "text/event-stream"),), STREAM),
    Response(200, (("content-type", "application/json"),), (b'{\n  "indented": true\n}\n',)),
    Response(404, (("content-type", "text/plain"),), (b"not found:\ttabs, 'quotes' \"both\"\n",)),
    Response(200, (("content-type", "audio/mpeg"),), (bytes(range(256)),)),
    Response(204, (), (b"",)),
    Response(200, (("content-type", "text/plain"),), ("line\u2028sep\x85nel\r\nend  \n".encode(),)),
    Response(200, (("content-type", "application/json"),), (b'{"yes":"no","null":"~","<<":1}',)),
]


def make(response: Response, number: int = 0, ttl: float | None = 3600) -> Entry:
    stream = any(v == "text/event-stream" for _, v in response.headers)
    body = {"chunks": encode_chunks(response.chunks)} if stream else encode_body(response.body)
    return Entry(
        key=f"{number:032x}",
        recorded_at="2024-05-01T12:00:00Z",
        ttl=ttl,
        duration=0.125 * number,
        request={
            "method": "POST",
            "url": "https://api.openai.com/v1/chat/completions",
            "headers": {"content-type": "application/json"},
            "body": encode_body(b'{"model":"gpt-4o-mini","n":%d}' % number),
        },
        response={"status": response.status, "headers": dict(response.headers), "body": body},
    )


def full_cassette(path: Path) -> Cassette:
    return Cassette(
        path, [make(r, i, ttl=None if i % 2 else 3600) for i, r in enumerate(RESPONSES)]
    )


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cassettes" / "mod" / "test.yaml"
    cassette = full_cassette(path)
    cassette.dirty = True
    assert cassette.save() is True
    loaded = Cassette.load(path)
    assert len(loaded) == len(RESPONSES)
    for entry, original, expected in zip(loaded, cassette, RESPONSES, strict=True):
        assert entry.to_response() == expected
        assert entry.to_response().chunks == expected.chunks
        assert (entry.key, entry.ttl, entry.duration) == (
            original.key,
            original.ttl,
            original.duration,
        )
        assert entry.same_exchange(original)
    assert loaded.render() == path.read_text("utf-8"), "re-rendering a file gives the same text"


def test_file_is_readable_yaml(tmp_path: Path) -> None:
    cassette = full_cassette(tmp_path / "c.yaml")
    text = cassette.render()
    assert text.startswith(f"version: {CASSETTE_VERSION}\n")
    assert '\n      "id": "chatcmpl-1",\n' in text, "JSON bodies are indented text, not escaped"
    assert "\n  response: |\n    200\n    content-type: application/json\n" in text
    # Chunks that are not one whole event each (a character cut in two) stay a list of chunks.
    first_event = 'data: {"choices":[{"delta":{"content":"Hel"}}]}'
    assert f"\n  response_chunks:\n  - text: |+\n      {first_event}\n" in text
    assert "\n  response_base64: AAECAwQF" in text
    assert "!!" not in text, "no tags"
    assert "&id" not in text, "no anchors"


def test_render_is_deterministic(tmp_path: Path) -> None:
    a, b = full_cassette(tmp_path / "a.yaml"), full_cassette(tmp_path / "b.yaml")
    assert a.render() == b.render() == a.render()


def test_repeated_key_keeps_call_order(tmp_path: Path) -> None:
    first, second = make(RESPONSES[0], 1), make(RESPONSES[3], 1)
    cassette = Cassette(tmp_path / "c.yaml", [first, second])
    assert cassette.get(first.key, 0) is first
    assert cassette.get(first.key, 1) is second
    assert cassette.get(first.key, 2) is None
    assert cassette.responses(first.key) == [first, second]
    third = make(RESPONSES[4], 1)
    assert cassette.put(1, third) is second
    assert list(cassette) == [first, third]


def test_save_only_when_changed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cassette = full_cassette(path)
    assert cassette.save() is False, "a cassette that is not dirty is not written"
    assert not path.exists()
    cassette.dirty = True
    assert cassette.save() is True
    old = 1_000_000_000
    os.utime(path, ns=(old, old))
    assert cassette.save() is False

    again = Cassette.load(path)
    again.put(0, make(RESPONSES[0], 0))  # the same exchange: dirty, but the text is the same
    assert again.dirty
    assert again.save() is False
    assert path.stat().st_mtime_ns == old

    again.put(0, make(RESPONSES[3], 0))
    assert again.save() is True
    assert path.stat().st_mtime_ns != old


def test_atomic_write_leaves_no_temp_files_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cassette = full_cassette(path)
    cassette.dirty = True
    cassette.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)
    cassette.put(0, make(RESPONSES[5], 0))
    assert cassette.save() is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert path.stat().st_mode & 0o777 == 0o640


def test_absent_file_is_an_empty_cassette(tmp_path: Path) -> None:
    cassette = Cassette.load(tmp_path / "nothing.yaml", tmp_path / "cache")
    assert len(cassette) == 0
    assert not cassette.dirty


def test_parse_cache_is_used_then_invalidated(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cache = tmp_path / "cache"
    cache.mkdir()
    written = full_cassette(path)
    write_v1_cassette(path, *written)

    first = Cassette.load(path, cache)
    [cache_file] = cache.iterdir()
    assert [e.key for e in first] == [e.key for e in written]

    # Proof that the second load reads the cache, not the YAML: a mark put only in the cache.
    saved = json.loads(cache_file.read_text("utf-8"))
    saved["entries"][0]["key"] = "from-the-cache"
    cache_file.write_text(json.dumps(saved), "utf-8")
    second = Cassette.load(path, cache)
    assert second.entries[0].key == "from-the-cache"
    assert second.entries[1].to_response() == RESPONSES[1]

    # Any change to the file (size or mtime) makes the cache stale.
    path.write_text(path.read_text("utf-8").replace("req_1", "req_2"), "utf-8")
    third = Cassette.load(path, cache)
    assert third.entries[0].key == written.entries[0].key
    assert ("x-request-id", "req_2") in third.entries[0].to_response().headers


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b'{"stamp": 1}', b'{"stamp": null, "entries": 3}', b"[]", b"\xff\xfe"],
)
def test_broken_parse_cache_is_ignored(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "c.yaml"
    cache = tmp_path / "cache"
    cache.mkdir()
    written = full_cassette(path)
    write_v1_cassette(path, *written)
    Cassette.load(path, cache)
    [cache_file] = cache.iterdir()
    cache_file.write_bytes(garbage)
    assert [e.to_response() for e in Cassette.load(path, cache)] == RESPONSES


def _stamp_matching_cache(path: Path, cache_file: Path, entries: object) -> None:
    stat = path.stat()
    cache_file.write_text(
        json.dumps({"stamp": [stat.st_ino, stat.st_size, stat.st_mtime_ns], "entries": entries})
    )


def test_cache_with_current_stamp_but_bad_entries_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cache = tmp_path / "cache"
    cache.mkdir()
    written = full_cassette(path)
    write_v1_cassette(path, *written)
    Cassette.load(path, cache)
    [cache_file] = cache.iterdir()
    _stamp_matching_cache(path, cache_file, [{"key": "no other field"}])
    assert [e.to_response() for e in Cassette.load(path, cache)] == RESPONSES


def test_parse_cache_in_unwritable_place_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    written = full_cassette(path)
    write_v1_cassette(path, *written)
    assert len(Cassette.load(path, tmp_path / "missing" / "cache")) == len(RESPONSES)


def test_a_version_2_file_needs_no_parse_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cache = tmp_path / "cache"
    cache.mkdir()
    written = full_cassette(path)
    written.dirty = True
    written.save()
    loaded = Cassette.load(path, cache)
    assert [e.to_response() for e in loaded] == RESPONSES
    assert list(cache.iterdir()) == [], "its entries are read from the file, when used"


def test_a_version_1_file_still_loads_and_replays_the_same_bytes(tmp_path: Path) -> None:
    path = write_v1_cassette(tmp_path / "c.yaml", *full_cassette(tmp_path / "c.yaml"))
    text = path.read_text("utf-8")
    assert text.startswith("version: 1\n")
    assert "\n      - sse:\n" in text, "stream events as YAML structures"
    assert "\n      json:\n" in text, "JSON bodies as YAML structures"
    loaded = Cassette.load(path)
    assert len(loaded) == len(RESPONSES)
    for entry, expected in zip(loaded, RESPONSES, strict=True):
        assert entry.to_response() == expected
        assert entry.to_response().chunks == expected.chunks
    # Written again, it is version 2, and replays the same bytes still.
    loaded.dirty = True
    assert loaded.save() is True
    assert path.read_text("utf-8").startswith("version: 2\n")
    again = Cassette.load(path)
    assert [e.to_response().chunks for e in again] == [r.chunks for r in RESPONSES]


def _large_file(path: Path, count: int) -> list[str]:
    """Write a cassette of ``count`` entries to ``path``; return their keys, in order."""
    written = Cassette(path, [make(RESPONSES[i % len(RESPONSES)], i) for i in range(count)])
    written.dirty = True
    written.save()
    return [e.key for e in written.entries]


def test_replaying_one_entry_of_a_large_file_parses_only_that_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    count = 2000
    keys = _large_file(path, count)
    # Every entry but the one replayed is damaged where only parsing it would notice: a
    # reader that parsed any of them would fail.
    text = path.read_text("utf-8")
    head, *entries = text.split("\n- key: ")
    for number in range(count):
        if number != 1234:
            entries[number] = entries[number].replace("\n  duration: ", "\n  duration: [", 1)
    path.write_text("\n- key: ".join([head, *entries]), "utf-8")
    loaded = Cassette.load(path)
    assert len(loaded) == count
    entry = loaded.get(keys[1234], 0)
    assert entry is not None
    assert entry.to_response() == RESPONSES[1234 % len(RESPONSES)]
    other = loaded.get(keys[1233], 0)
    assert other is not None
    with pytest.raises(CassetteError, match=r"c\.yaml:\d+: not a valid cassette"):
        other.to_response()


def _entries_alive() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Entry)


def test_reading_a_large_file_for_replay_makes_only_the_entries_used(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    count = 2000
    keys = _large_file(path, count)
    gc.collect()  # (no entry left over from writing the file)
    before = _entries_alive()
    loaded = Cassette.load(path)
    assert len(loaded) == count
    assert loaded.keys() == keys
    assert _entries_alive() == before, "reading the index makes no entry"
    entry = loaded.get(keys[1234], 0)
    assert entry is not None
    assert entry.key == keys[1234]
    assert _entries_alive() == before + 1
    response = entry.to_response()
    again = loaded.get(keys[1234], 0)
    assert again is not None
    assert again.to_response() == response
    assert loaded.get(keys[1234], 1) is None
    assert loaded.get("f" * 32, 0) is None
    # The file keeps no entry it made: once the caller drops them, none is left.
    del entry, again
    assert _entries_alive() == before, "an entry used is not kept"
    # Asked for whole, the entries are all there, in order.
    assert [e.key for e in loaded.entries] == keys
    assert loaded.entries[1234].to_response() == response


def test_a_repeated_key_replays_its_entries_in_order_when_read_lazily(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    first, second, other = make(RESPONSES[0], 7), make(RESPONSES[1], 7), make(RESPONSES[2], 8)
    written = Cassette(path, [first, other, second])
    written.dirty = True
    written.save()
    loaded = Cassette.load(path)
    assert loaded.keys() == [first.key, other.key, first.key]
    found = [loaded.get(first.key, n) for n in range(3)]
    assert [e.to_response() if e else None for e in found] == [RESPONSES[0], RESPONSES[1], None]
    assert [e.to_response() for e in loaded.responses(first.key)] == RESPONSES[:2]
    assert loaded.responses("f" * 32) == []
    # A lazily read file takes new entries as any other does.
    replaced = loaded.put(1, make(RESPONSES[3], 7))
    assert replaced is not None
    assert (replaced.key, replaced.to_response()) == (first.key, RESPONSES[1])
    assert [e.to_response() for e in loaded.responses(first.key)] == [RESPONSES[0], RESPONSES[3]]
    assert loaded.entries[-1].to_response() == RESPONSES[3]


GOOD_ENTRY = """\
- key: abc
  recorded_at: '2024-05-01T12:00:00Z'
  duration: 0.1
  request: {method: GET, url: 'https://h/'}
  response:
    status: 200
    body: {text: ok}
"""


def _entry(**response: str) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in response.items())
    return (
        "version: 1\nentries:\n- key: abc\n  recorded_at: '2024-05-01T12:00:00Z'\n"
        "  request: {method: GET, url: 'https://h/'}\n  response:\n" + lines
    )


BAD_FILES = [
    pytest.param("version: 1\nentries:\n  - key: a\n   bad: b\n", r":4: .*YAML", id="yaml-indent"),
    pytest.param("version: 1\nentries: [\n", r":3: .*YAML", id="yaml-unclosed"),
    pytest.param("version: 1\n\tentries: []\n", r":2: .*YAML", id="yaml-tab"),
    pytest.param("version: 1\nentries:\n- key: 'abc\n", r":4: .*YAML", id="truncated-string"),
    pytest.param("version: 1\nentries:\n" + GOOD_ENTRY[:118], r":8: .*YAML", id="truncated-key"),
    pytest.param(
        "version: 1\nentries:\n" + GOOD_ENTRY.split("  response:")[0],
        "entry 1 lacks response",
        id="truncated-entry",
    ),
    pytest.param("- 1\n- 2\n", "not a pytest-llmcache cassette", id="top-level-list"),
    pytest.param("just text\n", "not a pytest-llmcache cassette", id="top-level-str"),
    pytest.param("", "not a pytest-llmcache cassette", id="empty-file"),
    pytest.param("entries: []\n", "no 'version'", id="no-version"),
    pytest.param("version: 99\nentries: []\n", r"version 99 is not supported", id="version-99"),
    pytest.param("version: '1'\nentries: []\n", r"version '1' is not supported", id="version-str"),
    pytest.param("version: 1\nentries: {a: 1}\n", "'entries' must be a list", id="entries-map"),
    pytest.param("version: 1\nentries:\n- just a string\n", "entry 1 is not a mapping", id="item"),
    pytest.param(
        "version: 1\nentries:\n" + GOOD_ENTRY + GOOD_ENTRY.replace("  response:", "  other:"),
        "entry 2 lacks response",
        id="no-response",
    ),
    pytest.param(
        "version: 1\nentries:\n- key: a\n  response: {status: 200}\n",
        "entry 1 lacks recorded_at, request",
        id="missing-several",
    ),
    pytest.param(_entry(status="'200'"), "'status'", id="status-str"),
    pytest.param(_entry(body="{text: x}"), "'status'", id="status-missing"),
    pytest.param(_entry(status="true"), "'status'", id="status-bool"),
    pytest.param(_entry(status="2000"), "'status'", id="status-range"),
    pytest.param("version: 1\nentries:\n- " + "x" * 3 + "\n", "not a mapping", id="scalar-entry"),
    pytest.param(_entry(status="200", body="{html: x}"), "body must hold", id="body-kind"),
    pytest.param(_entry(status="200", body="[1]"), "body must be a mapping", id="body-list"),
    pytest.param(_entry(status="200", body="{json: {}, style: fancy}"), "style", id="style"),
    pytest.param(_entry(status="200", body="{chunks: {a: 1}}"), "chunks", id="chunks-map"),
    pytest.param(_entry(status="200", body="{chunks: [{foo: 1}]}"), "chunk 1", id="chunk-kind"),
    pytest.param(_entry(status="200", body="{chunks: [{sse: }]}"), "chunk 1", id="chunk-sse-null"),
    pytest.param(_entry(status="200", body="{base64: 'abcde'}"), "base64", id="bad-base64"),
    pytest.param(_entry(status="200", body="{base64: 12}"), "base64", id="base64-int"),
    pytest.param(_entry(status="200", body="{text: 12}"), "text", id="text-not-str"),
    pytest.param(_entry(status="200", headers="[a, b]"), "headers", id="headers-list"),
    pytest.param(
        _entry(status="200").replace("'2024-05-01T12:00:00Z'", "yesterday"),
        "recorded_at",
        id="recorded-at",
    ),
    pytest.param(
        _entry(status="200").replace("  request:", "  ttl: 1h\n  request:"), "ttl", id="ttl-str"
    ),
    pytest.param(
        _entry(status="200").replace("  request: {", "  request: [").replace("'}", "']"),
        "request must be a mapping",
        id="request-list",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
@pytest.mark.parametrize("cached", [False, True], ids=["plain", "with-cache"])
def test_bad_file(tmp_path: Path, text: str, expected: str, cached: bool) -> None:
    path = tmp_path / "cassettes" / "broken.yaml"
    path.parent.mkdir()
    path.write_text(text, "utf-8")
    before = path.read_bytes()
    cache = tmp_path / "cache" if cached else None
    if cache is not None:
        cache.mkdir()
    with pytest.raises(CassetteError) as info:
        Cassette.load(path, cache)
    message = str(info.value)
    assert message.startswith(str(path))
    assert re.search(expected, message), message
    assert path.read_bytes() == before
    if cache is not None:
        assert list(cache.iterdir()) == [], "a broken file is never cached"


def test_good_entry_template_is_valid(tmp_path: Path) -> None:
    # The broken files above are this one with one thing wrong.
    path = tmp_path / "ok.yaml"
    path.write_text(_entry(status="200", body="{text: ok}"), "utf-8")
    [entry] = Cassette.load(path)
    assert entry.to_response() == Response(200, (), (b"ok",))
    path.write_text("version: 1\nentries:\n" + GOOD_ENTRY, "utf-8")
    [entry] = Cassette.load(path)
    assert entry.to_response() == Response(200, (), (b"ok",))


def test_not_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"version: 1\nentries: []\n# \xff\xfe\n")
    with pytest.raises(CassetteError, match=re.escape(str(path))):
        Cassette.load(path)


# Writing is tried in a child process that cannot write: as an ordinary user that is a
# folder without write permission; as root (CI), which permissions do not stop, the child
# first becomes the unprivileged user "nobody". A cap on file size (RLIMIT_FSIZE) stops a
# write half-way, whoever runs it.
_SAVE_IN_CHILD = """
import os, resource, signal, sys
from pathlib import Path
from pytest_llmcache._cassette import Cassette, CassetteError, Entry

path, how = Path(sys.argv[1]), sys.argv[2]
if how == "nobody" and os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
if how == "half":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
cassette = Cassette(path, [Entry.from_data(e) for e in __import__("json").load(sys.stdin)])
cassette.dirty = True
try:
    cassette.save()
except CassetteError as exc:
    print("ERROR", exc)
else:
    print("WRITTEN")
"""


def _save_in_child(path: Path, how: str, entries: list[Entry]) -> str:
    data = json.dumps([e.to_data() for e in entries])
    result = subprocess.run(
        [sys.executable, "-c", _SAVE_IN_CHILD, str(path), how],
        input=data,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _unwritable(folder: Path) -> None:
    """A folder the child cannot write, but can enter (so the error is about writing)."""
    folder.mkdir(parents=True)
    for parent in [folder, *folder.parents]:
        if parent == Path(tempfile.gettempdir()) or parent == parent.parent:
            break
        parent.chmod(parent.stat().st_mode | 0o111)
    folder.chmod(0o555)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    _unwritable(folder)
    try:
        for path in (folder / "c.yaml", folder / "sub" / "c.yaml"):
            output = _save_in_child(path, "nobody", [make(RESPONSES[0])])
            assert output.startswith("ERROR"), output
            assert str(path) in output
            assert "cannot write" in output
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_unwritable_file_keeps_old_content(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    path = folder / "c.yaml"
    _unwritable(folder)
    folder.chmod(0o755)
    cassette = full_cassette(path)
    cassette.dirty = True
    cassette.save()
    before = path.read_bytes()
    folder.chmod(0o555)
    try:
        output = _save_in_child(path, "nobody", [make(RESPONSES[3], 0)])
        assert output.startswith("ERROR"), output
        assert str(path) in output
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["c.yaml"]
    finally:
        folder.chmod(0o700)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_a_write_stopped_half_way_keeps_old_content(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    cassette = full_cassette(path)
    cassette.dirty = True
    cassette.save()
    before = path.read_bytes()
    big = [make(Response(200, (), (b"x" * 100_000,)), n) for n in range(3)]
    output = _save_in_child(path, "half", big)
    assert output.startswith("ERROR"), output
    assert "cannot write" in output
    assert path.read_bytes() == before, "no half-written cassette"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"], "no temporary file left"


NOW = datetime(2024, 5, 1, 13, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("recorded_at", "ttl", "expired"),
    [
        ("2024-05-01T12:00:00Z", None, False),
        ("2024-05-01T12:00:00Z", 3600, False),
        ("2024-05-01T12:00:00Z", 3599, True),
        ("2024-05-01T12:00:00+00:00", 60, True),
        ("2024-05-01T12:00:00", 7200, False),
        ("2024-05-01T14:00:00+02:00", 60, True),
    ],
)
def test_expiry(recorded_at: str, ttl: float | None, expired: bool) -> None:
    entry = make(RESPONSES[0], ttl=ttl)
    entry.recorded_at = recorded_at
    assert entry.is_expired(NOW) is expired
    assert entry.recorded_datetime().tzinfo is not None
    assert entry.is_expired(NOW - timedelta(days=365)) is False


@pytest.mark.parametrize(("ttl", "shown"), [(3600.0, "ttl: 3600\n"), (1.5, "ttl: 1.5\n")])
def test_ttl_is_written_plainly(tmp_path: Path, ttl: float, shown: str) -> None:
    text = Cassette(tmp_path / "c.yaml", [make(RESPONSES[0], ttl=ttl)]).render()
    assert shown in text
    assert "ttl:" not in Cassette(tmp_path / "c.yaml", [make(RESPONSES[0], ttl=None)]).render()


# -- property: any body survives the YAML file ------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
raw_bodies = st.one_of(
    json_values.map(lambda v: json.dumps({"v": v}, ensure_ascii=False).encode("utf-8", "replace")),
    st.text().map(lambda t: t.encode("utf-8", "replace")),
    st.binary(max_size=64),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(raw_bodies, min_size=1, max_size=3), st.lists(raw_bodies, max_size=3))
def test_yaml_round_trip_property(bodies: list[bytes], stream: list[bytes]) -> None:
    path = Path("property.yaml")
    responses = [Response(200, (("content-type", "application/json"),), (b,)) for b in bodies]
    responses.append(Response(200, (("content-type", "text/event-stream"),), tuple(stream)))
    cassette = Cassette(path, [make(r, i) for i, r in enumerate(responses)])
    text = cassette.render()
    loaded = validate(_yaml.load(text), path)
    assert [e.to_response() for e in loaded] == responses
    assert Cassette(path, loaded).render() == text


def test_folder_that_is_a_file(tmp_path: Path) -> None:
    # Works whoever runs the tests (chmod does not stop root).
    blocker = tmp_path / "cassettes"
    blocker.write_text("not a folder")
    path = blocker / "mod" / "c.yaml"
    cassette = Cassette(path, [make(RESPONSES[0])])
    cassette.dirty = True
    with pytest.raises(CassetteError) as info:
        cassette.save()
    assert str(path) in str(info.value)
    assert "cannot write" in str(info.value)
    assert blocker.read_text() == "not a folder"
    blocker.unlink()
    cassette.dirty = True
    assert cassette.save() is True
    assert Cassette.load(path).entries[0].to_response() == RESPONSES[0]


def _owned(key: int, test: str | None, text: str = "old") -> Entry:
    entry = make(Response(200, (("content-type", "text/plain"),), (text.encode(),)), key)
    entry.test = test
    return entry


def _texts(cassette: Cassette) -> list[tuple[str, str | None, str]]:
    return [(e.key[-1], e.test, e.response["body"]["text"]) for e in cassette]


def test_apply_replaces_a_slot_where_it_stands() -> None:
    cassette = Cassette(Path("c.yaml"), [_owned(1, "a"), _owned(2, "b"), _owned(3, "c")])
    new = _owned(2, "b", "new")
    cassette.apply(Change("b", {(new.key, 0): new}, replace_own=True))
    assert _texts(cassette) == [("1", "a", "old"), ("2", "b", "new"), ("3", "c", "old")]
    assert cassette.dirty


def test_apply_in_record_drops_the_tests_own_stale_entries_only() -> None:
    entries = [_owned(1, "a"), _owned(2, "b"), _owned(3, None), _owned(4, "b")]
    cassette = Cassette(Path("c.yaml"), entries)
    new = _owned(5, "b", "new")
    cassette.apply(Change("b", {(new.key, 0): new}, replace_own=True))
    assert _texts(cassette) == [("1", "a", "old"), ("3", None, "old"), ("5", "b", "new")]


def test_apply_on_a_tests_own_file_drops_entries_of_unknown_owner() -> None:
    cassette = Cassette(Path("c.yaml"), [_owned(1, None), _owned(2, None)])
    new = _owned(2, "t", "new")
    cassette.apply(Change("t", {(new.key, 0): new}, replace_own=True, own_file=True))
    assert _texts(cassette) == [("2", "t", "new")]


def test_apply_in_auto_keeps_everything_and_adds() -> None:
    cassette = Cassette(Path("c.yaml"), [_owned(1, "a"), _owned(2, "t")])
    new = _owned(3, "t", "new")
    cassette.apply(Change("t", {(new.key, 0): new}))
    assert _texts(cassette) == [("1", "a", "old"), ("2", "t", "old"), ("3", "t", "new")]


def test_apply_places_identical_calls_by_their_occurrence_not_their_arrival() -> None:
    first = _owned(1, "a", "first")
    cassette = Cassette(Path("c.yaml"), [first, _owned(9, "a")])
    answers = {n: _owned(1, "a", f"answer {n}") for n in (3, 1, 4, 2)}
    # Arrival order 3, 1, 4, 2; a dict keeps that order.
    cassette.apply(Change("a", {(e.key, n): e for n, e in answers.items()}))
    assert [e.response["body"]["text"] for e in cassette.responses(first.key)] == [
        "first",
        "answer 1",
        "answer 2",
        "answer 3",
        "answer 4",
    ]
    assert cassette.entries[-1].key.endswith("9"), "new slots go after their key's last entry"


def test_apply_closes_gaps_left_by_calls_that_stored_nothing() -> None:
    cassette = Cassette(Path("c.yaml"))
    answers = {n: _owned(1, "a", f"answer {n}") for n in (0, 2, 5)}
    cassette.apply(Change("a", {(e.key, n): e for n, e in answers.items()}))
    key = answers[0].key
    assert [cassette.get(key, n).response["body"]["text"] for n in range(3)] == [  # type: ignore[union-attr]
        "answer 0",
        "answer 2",
        "answer 5",
    ]


def _shrunk_fstat(real: object, by: int) -> object:
    """``os.fstat`` that reports a file ``by`` bytes smaller than it is: as if it grew
    between being sized and being read."""

    def fstat(fd: int) -> os.stat_result:
        found = real(fd)  # type: ignore[operator]
        fields = list(found)
        fields[6] = max(0, found.st_size - by)  # st_size
        return os.stat_result(fields)

    return fstat


def test_a_cassette_that_grows_while_read_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    text = "version: 2\nentries: []\n"
    path.write_text(text)
    monkeypatch.setattr(os, "fstat", _shrunk_fstat(os.fstat, 5))
    assert read_text(path) == text


def test_a_cassette_that_grows_past_the_limit_while_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 2\nentries: []\n" + "#" * 100 + "\n")
    monkeypatch.setattr(_cassette, "MAX_SIZE", 50)
    monkeypatch.setattr(os, "fstat", _shrunk_fstat(os.fstat, 100))
    with pytest.raises(CassetteError, match="over the limit of 50 bytes"):
        read_text(path)


def test_a_released_entry_lets_go_of_what_it_decoded_and_reads_it_again() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples" / "cassettes"
    path = sorted(examples.rglob("*.yaml"))[0]
    entry = Cassette.load(path).entries[0]
    first = entry.to_response()
    # (A JSON answer is read straight from the file's text; another body, field by field.)
    assert entry.source.data is not None or entry.source.json
    assert entry.to_response() is first  # kept until released
    entry.release()
    assert entry.source.data is None
    assert entry.source.json is None
    again = entry.to_response()
    assert again is not first
    assert (again.status, again.headers, again.chunks) == (
        first.status,
        first.headers,
        first.chunks,
    )
    assert entry.request == Cassette.load(path).entries[0].request


def test_a_cassette_over_the_size_replay_reads_is_not_written(tmp_path: Path) -> None:
    """The recorder never writes a file that replay would refuse: the file stays as it was."""
    path = tmp_path / "c.yaml"
    small = Cassette(path, [_text_entry("0a", "small")])
    small.dirty = True
    assert small.save()
    before = path.read_bytes()
    big = Cassette(path, [_text_entry("0a", "small"), _text_entry("0b", "x" * _cassette.MAX_SIZE)])
    big.dirty = True
    with pytest.raises(CassetteError, match=r"c\.yaml: not written: it would be [\d,]+ bytes"):
        big.save()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temporary file left


def _text_entry(key: str, text: str) -> Entry:
    return Entry(
        key,
        "2026-01-02T03:04:05Z",
        None,
        0.5,
        {"method": "POST", "url": "https://api.example.com/v1/x", "headers": {}, "body": {}},
        {"status": 200, "headers": {"content-type": "text/plain"}, "body": {"text": text}},
    )
