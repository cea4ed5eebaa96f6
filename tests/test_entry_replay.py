"""A version 2 entry's fields and replayed response: the direct reading of the writer's entries
gives what the field-by-field reading gives, and anything else is read (or refused) by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmcache._entry import CassetteError, Entry
from pytest_llmcache._format_v2 import _FORMAT, _Source

PATH = Path("cassettes/test_x.yaml")
KEY = "ab" * 16
INDENTED = json.dumps({"model": "m", "usage": {"prompt_tokens": 1}}, indent=2) + "\n"


def _entry(**changes: Any) -> Entry:
    data: dict[str, Any] = {
        "key": KEY,
        "recorded_at": "2026-12-01T17:25:52Z",
        "duration": 0.068,
        "test": "test_x.py::test_chat",
        "request": "POST http://127.0.0.1/v1/chat/completions\naccept: application/json\n",
        "request_json": '{\n  "model": "m"\n}\n',
        "response": "200\ncontent-type: application/json\n",
        "response_json": INDENTED,
    }
    data.update(changes)
    data = {name: value for name, value in data.items() if value is not _ABSENT}
    return Entry.lazy(KEY, _FORMAT, _Source(PATH, data, number=1))


class _Absent:
    """A field left out of the entry (its repr names it the same in every process, as
    pytest-xdist's workers must collect the same test ids)."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def _outcome(read: Any, entry: Entry) -> object:
    """What ``read`` gives for the entry: a value, or the error it raises."""
    try:
        return read(entry)
    except CassetteError as exc:
        return ("error", str(exc))


def _fields(entry: Entry) -> tuple[object, ...]:
    _FORMAT.fields(entry)
    names = ("recorded_at", "ttl", "duration", "test", "cut_short", "allow_secrets", "edited")
    return tuple((getattr(entry, name), type(getattr(entry, name))) for name in names)


def _checked_fields(entry: Entry) -> tuple[object, ...]:
    _FORMAT._fields(entry)
    names = ("recorded_at", "ttl", "duration", "test", "cut_short", "allow_secrets", "edited")
    return tuple((getattr(entry, name), type(getattr(entry, name))) for name in names)


FIELD_CHANGES = [
    {},
    {"ttl": 60},
    {"ttl": 1.5},
    {"ttl": True},
    {"ttl": "60"},
    {"duration": 2},
    {"duration": _ABSENT},
    {"duration": None},
    {"duration": False},
    {"duration": "0.5"},
    {"test": _ABSENT},
    {"test": 12},
    {"cut_short": True},
    {"cut_short": "yes"},
    {"allow_secrets": ["sk-test-*"]},
    {"allow_secrets": "sk-test-*"},
    {"allow_secrets": []},
    {"recorded_at": "2026-12-01T17:25:52+00:00"},
    {"recorded_at": "2026-12-01 17:25:52"},
    {"recorded_at": "yesterday"},
    {"recorded_at": 20261201},
    {"recorded_at": _ABSENT},
    {"key": "cd" * 16},
    {"key": _ABSENT},
    {"request": "   \n"},
    {"request": ""},
    {"request": 7},
    {"response": "\n"},
    {"response": ["200"]},
    {"surprise": 1},
]


@pytest.mark.parametrize("changes", FIELD_CHANGES, ids=repr)
def test_fields_read_directly_are_those_checked_one_by_one(changes: dict[str, Any]) -> None:
    assert _outcome(_fields, _entry(**changes)) == _outcome(_checked_fields, _entry(**changes))


def test_the_writers_fields_are_set_as_read() -> None:
    entry = _entry(ttl=60, cut_short=True)
    assert (entry.recorded_at, entry.ttl, entry.duration) == ("2026-12-01T17:25:52Z", 60.0, 0.068)
    assert (entry.test, entry.cut_short, entry.allow_secrets) == ("test_x.py::test_chat", True, ())
    assert type(entry.ttl) is float
    assert not entry.edited


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ttl": True}, "ttl must be a number of seconds, got True"),
        ({"recorded_at": "yesterday"}, "recorded_at 'yesterday' is not an ISO 8601 time"),
        ({"request": "   \n"}, "request must be a text block"),
        ({"surprise": 1}, "unknown field(s) surprise"),
    ],
)
def test_a_field_not_as_the_writer_writes_it_is_named(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CassetteError) as info:
        _ = _entry(**changes).ttl
    assert str(info.value) == f"{PATH}: entry 1: {message}"


RESPONSE_CHANGES = [
    {},
    {"response": "200\n"},
    {"response": "200"},
    {"response": "404\ncontent-type: application/json"},
    {"response": " 200\ncontent-type: application/json\n"},
    {"response": "200 \ncontent-type: application/json\n"},
    {"response": "0200\n"},
    {"response": "99\n"},
    {"response": "OK\n"},
    {"response": "200\nx: 1\n\ny: 2\n"},
    {"response": "200\nx:1\n"},
    {"response": "200\nx: 1: 2\n"},
    {"response": "200\nx:\n"},
    {"response": "200\nx: \n"},
    {"response": "200\n: 1\n"},
    {"response": "200\n:1\n"},
    {"response": "200\nno separator\n"},
    {"response": "200\nset-cookie: a=1\nset-cookie: b=2\n"},
    {"response_json": "[1, 2]\n"},
    {"response_json": "  [1, 2]\n"},
    {"response_json": "[1, 2]\n\n"},
    {"response_json": "[1, 2] x\n"},
    {"response_json": '"text"\n'},
    {"response_json": "{\n"},
    {"response_json": "[" * 100_000},
    {"response_json": "\ufeff[1]\n"},
    {"response_json": 5},
    {"response_json": INDENTED, "response_json_style": "spaced+nl"},
    {"response_json": INDENTED, "response_json_style": "fancy"},
    {"response_json": _ABSENT, "response_text": "plain"},
    {"response_json": _ABSENT, "response_text": 5},
    {"response_json": _ABSENT, "response_sse": "data: 1\n\ndata: 2\n"},
    {"response_json": _ABSENT, "response_sse": "data: 1"},
    {"response_json": _ABSENT, "response_base64": "AAEC"},
    {"response_json": _ABSENT, "response_base64": "not base64!"},
    {"response_json": _ABSENT},
    {"response_json": None},
    {"response_json": None, "response_sse": "data: 1\n"},
]


def _replayed(entry: Entry) -> tuple[object, ...]:
    response = _FORMAT.replay(entry)
    return (response.status, response.headers, response.chunks, response.document)


def _checked_replay(entry: Entry) -> tuple[object, ...]:
    response = _FORMAT._replay(entry)
    return (response.status, response.headers, response.chunks, response.document)


@pytest.mark.parametrize("changes", RESPONSE_CHANGES, ids=lambda c: repr(c)[:60])
def test_a_response_read_directly_is_the_one_checked_part_by_part(changes: dict[str, Any]) -> None:
    assert _outcome(_replayed, _entry(**changes)) == _outcome(_checked_replay, _entry(**changes))


def test_the_writers_response_replays_compact_json_and_its_document() -> None:
    response = _entry().to_response()
    assert response.status == 200
    assert response.headers == (("content-type", "application/json"),)
    assert response.chunks == (b'{"model":"m","usage":{"prompt_tokens":1}}',)
    assert response.document == {"model": "m", "usage": {"prompt_tokens": 1}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"response": "200\n: 1\n"}, "header line ': 1' is not 'name: value'"),
        ({"response": " 2000\n"}, "response needs a three-digit status on its first line"),
        ({"response_json": "{\n"}, "response_json is not valid JSON: Expecting property name"),
        ({"response_json": "[" * 100_000}, "response_json is nested too deeply"),
        ({"response_json_style": "fancy"}, "unknown response_json_style 'fancy'"),
        ({"response_json": _ABSENT, "response_sse": "data: 1"}, "must end each event"),
    ],
)
def test_a_response_not_as_the_writer_writes_it_is_named(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CassetteError) as info:
        _entry(**changes).to_response()
    assert str(info.value).startswith(f"{PATH}: entry 1: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "crlf", "chunks"),
    [
        ("data: 1\n\ndata: 2\n", False, (b"data: 1\n\n", b"data: 2\n\n")),
        ("data: 1\n\ndata: 2\n", True, (b"data: 1\r\n\r\n", b"data: 2\r\n\r\n")),
        ("event: a\ndata: 1\n", False, (b"event: a\ndata: 1\n\n",)),
        # Edited by hand: an empty line at the end stays with the last event, and one
        # between two events starts the second.
        ("data: 1\n\ndata: 2\n\n", False, (b"data: 1\n\n", b"data: 2\n\n\n")),
        ("data: 1\n\ndata: 2\n\n", True, (b"data: 1\r\n\r\n", b"data: 2\r\n\r\n\r\n")),
        ("data: 1\n\n\ndata: 2\n", False, (b"data: 1\n\n", b"\ndata: 2\n\n")),
        ("\n", False, (b"\n\n",)),
        ("\n\n", False, (b"\n\n\n",)),
    ],
)
def test_an_event_stream_is_cut_into_its_events(
    text: str, crlf: bool, chunks: tuple[bytes, ...]
) -> None:
    changes = {"response_json": _ABSENT, "response_sse": text}
    if crlf:
        changes["response_sse_eol"] = "crlf"
    assert _entry(**changes).to_response().chunks == chunks
    assert _checked_replay(_entry(**changes))[2] == chunks


header_lines = st.text(st.sampled_from("ab: \t-"), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.sampled_from("0129 "), max_size=4),
    st.lists(header_lines, max_size=4),
    st.sampled_from(["", "\n", "\n\n"]),
)
def test_any_response_block_replays_as_it_is_checked(
    status: str, lines: list[str], end: str
) -> None:
    changes = {"response": "\n".join([status, *lines]) + end}
    assert _outcome(_replayed, _entry(**changes)) == _outcome(_checked_replay, _entry(**changes))
