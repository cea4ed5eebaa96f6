"""AWS event streams in a version 2 cassette: stored message by message, readable, replayed
as the same frames one chunk each; anything the readable form cannot give back exactly is
stored as base64; a broken message is refused with its file and line."""

from __future__ import annotations

import base64
import itertools
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmcache._capture import make_entry
from pytest_llmcache._entry import CassetteError, Entry
from pytest_llmcache._eventstream import Header, Message, encode_one
from pytest_llmcache._exchange import Request
from pytest_llmcache._format_v2 import read, render
from pytest_llmcache._usage import Usage, entry_usage, replay_usage

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
EVENT_STREAM = "application/vnd.amazon.eventstream"
URL = "https://bedrock-runtime.us-east-1.amazonaws.com/model/fake.model-v1%3A0/converse-stream"


def _entry(chunks: list[bytes], content_type: str = EVENT_STREAM) -> Entry:
    return make_entry(
        key="0123456789abcdef0123456789abcdef",
        request=Request("POST", URL, (("content-type", "application/json"),), b'{"a":1}'),
        status=200,
        headers=(("content-type", content_type),),
        chunks=chunks,
        match_headers=(),
        ttl=None,
        duration=0.5,
        now=NOW,
        secrets=(),
    )


def _event(kind: str, document: dict[str, object]) -> bytes:
    headers = (
        Header(":event-type", "string", kind),
        Header(":content-type", "string", "application/json"),
        Header(":message-type", "string", "event"),
    )
    values = {k: v.decode() if isinstance(v, bytes) else v for k, v in document.items()}
    return encode_one(Message(headers, json.dumps(values, separators=(",", ":")).encode()))


CONVERSE = [
    _event("messageStart", {"p": "abcd", "role": "assistant"}),
    _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi there"}}),
    _event("messageStop", {"stopReason": "end_turn"}),
    _event("metadata", {"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}}),
]


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in pieces that ignore frame boundaries, as a connection delivers them."""
    points = sorted({0, *(c % (len(data) + 1) for c in cuts), len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def _replayed(text: str, path: Path = Path("c.yaml")) -> tuple[bytes, ...]:
    (entry,) = read(text, path)
    return entry.to_response().chunks


def test_a_converse_stream_reads_event_by_event_and_replays_frame_by_frame() -> None:
    text = render([_entry(_cut(b"".join(CONVERSE), [30, 100, 101, 250]))])
    assert "response_chunks" not in text
    assert (
        "  response_events:\n"
        "  - headers: |\n"
        "      :event-type: messageStart\n"
        "      :content-type: application/json\n"
        "      :message-type: event\n"
        "    json: |\n"
        "      {\n"
        '        "p": "abcd",\n'
        '        "role": "assistant"\n'
        "      }\n"
    ) in text
    assert '"text": "Hi there"' in text
    assert _replayed(text) == tuple(CONVERSE)


def test_the_stored_form_renders_the_same_text_again() -> None:
    text = render([_entry(CONVERSE)])
    (entry,) = read(text, Path("c.yaml"))
    rebuilt = Entry.from_data(entry.to_data())
    assert render([rebuilt]) == text
    assert rebuilt.to_response().chunks == tuple(CONVERSE)


# Names that the lines can hold and names they cannot (": " inside, a type-like suffix).
NAMES = st.lists(st.sampled_from([*"ab:- ()é\n", " (int)", ":event-type"]), max_size=5).map("".join)
HEADERS = st.one_of(
    st.builds(Header, NAMES, st.just("string"), st.text(max_size=12)),
    st.builds(Header, NAMES, st.just("bool"), st.booleans()),
    st.builds(Header, NAMES, st.sampled_from(["byte"]), st.integers(-128, 127)),
    st.builds(Header, NAMES, st.sampled_from(["short"]), st.integers(-(2**15), 2**15 - 1)),
    st.builds(Header, NAMES, st.sampled_from(["int"]), st.integers(-(2**31), 2**31 - 1)),
    st.builds(Header, NAMES, st.sampled_from(["long", "timestamp"]), st.integers(-(2**63), 0)),
    st.builds(Header, NAMES, st.just("bytes"), st.binary(max_size=8)),
    st.builds(Header, NAMES, st.just("uuid"), st.uuids()),
)
PAYLOADS = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=20).map(str.encode),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3).map(
        lambda d: json.dumps(d, separators=(",", ":")).encode()
    ),
)
MESSAGES = st.builds(Message, st.lists(HEADERS, max_size=4).map(tuple), PAYLOADS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.lists(st.integers(0, 10**4), max_size=4))
def test_any_event_stream_replays_as_its_frames(messages: list[Message], cuts: list[int]) -> None:
    frames = [encode_one(message) for message in messages]
    text = render([_entry(_cut(b"".join(frames), cuts))])
    assert _replayed(text) == tuple(frames)
    assert ("response_events" in text) != ("response_chunks" in text)


def test_headers_the_lines_cannot_hold_fall_back_to_base64_frames() -> None:
    odd = encode_one(Message((Header("a: b", "string", "c"),), b"{}"))
    frames = [CONVERSE[0], odd, CONVERSE[1]]
    text = render([_entry([b"".join(frames)])])
    assert "response_events" not in text
    assert text.count("  - base64: ") == 3
    assert _replayed(text) == tuple(frames)


def test_typed_headers_and_payloads_read_as_text() -> None:
    headers = (
        Header(":event-type", "string", "chunk"),
        Header("flag", "bool", False),
        Header("retries", "int", 3),
        Header("at", "timestamp", 1_700_000_000_000),
        Header("id", "uuid", uuid.UUID(int=7)),
        Header("raw", "bytes", b"\x00\x01"),
    )
    frames = [
        encode_one(Message(headers, b"plain words")),
        encode_one(Message(headers[:1], b"\xff\x00")),
        encode_one(Message(headers[:1], b"")),
        encode_one(Message((), b'{"a": 1}')),
    ]
    text = render([_entry(frames)])
    assert (
        "  - headers: |\n"
        "      :event-type: chunk\n"
        "      flag (bool): false\n"
        "      retries (int): 3\n"
        "      at (timestamp): 1700000000000\n"
        "      id (uuid): 00000000-0000-0000-0000-000000000007\n"
        "      raw (bytes): AAE=\n"
        "    text: plain words\n"
    ) in text
    assert "    base64: /wA=\n" in text
    assert "  - headers: |\n      :event-type: chunk\n  - json: |\n" in text
    assert "    json_style: spaced\n" in text
    assert _replayed(text) == tuple(frames)


def test_a_stream_that_is_not_whole_frames_is_kept_as_recorded() -> None:
    data = b"".join(CONVERSE)
    chunks = [data[:50], data[50:-3]]  # left early, mid-frame
    text = render([_entry(chunks)])
    assert "response_events" not in text
    assert _replayed(text) == tuple(chunks)


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("    text: plain words\n", "    base64: '@@not base64'\n", "base64 is not valid base64"),
        ("      retries (int): 3\n", "      retries (int): 3000000000\n", "does not fit a int"),
        ("      flag (bool): false\n", "      flag (bool): maybe\n", "is not a bool value"),
        ("      flag (bool): false\n", "      flag\n", "is not 'name: value'"),
        ("    text: plain words\n", "    json: '{'\n", "json is not valid JSON"),
        ("    text: plain words\n", "    text: a\n    base64: AA==\n", "expected headers and"),
        ("    text: plain words\n", "    payload: x\n", "expected headers and one of"),
    ],
)
def test_a_broken_message_is_refused_with_file_and_line(old: str, new: str, problem: str) -> None:
    headers = (Header("flag", "bool", False), Header("retries", "int", 3))
    frames = [CONVERSE[0], encode_one(Message(headers, b"plain words"))]
    text = render([_entry(frames), _entry(CONVERSE)])
    assert old in text
    broken = text.replace(old, new, 1)
    line = _line_of(broken, "  - headers: |\n      flag")
    with pytest.raises(CassetteError) as caught:
        _replayed_first(broken)
    message = str(caught.value)
    assert message.startswith(f"bedrock.yaml:{line}: entry response_events item 2"), message
    assert problem in message


def _replayed_first(text: str) -> tuple[bytes, ...]:
    entries = read(text, Path("bedrock.yaml"))
    return entries[0].to_response().chunks


def test_a_list_of_events_that_is_not_a_list_is_refused() -> None:
    text = render([_entry(CONVERSE)])
    broken = re.sub(r"  response_events:\n(  - .*\n|    .*\n)+", "  response_events: 3\n", text)
    with pytest.raises(CassetteError, match=r"c\.yaml:3: entry: response_events must be a list"):
        _replayed(broken)


def test_usage_is_read_from_the_metadata_event_alike_stored_and_replayed() -> None:
    (entry,) = read(render([_entry(CONVERSE)]), Path("c.yaml"))
    expected = Usage("fake.model-v1:0", 7, 3)
    assert entry_usage(entry.request, entry.response) == expected
    assert replay_usage(entry.request, entry.to_response()) == expected


@pytest.mark.parametrize("padding", ["", "x", "xy"])
def test_usage_is_read_inside_base64_chunks_alike_stored_and_replayed(padding: str) -> None:
    inner = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 13, "output_tokens": 1}}},
        {"type": "content_block_delta", "delta": {"text": "hi"}},
        {"type": "message_delta", "usage": {"output_tokens": 5}},
    ]
    # The padding shifts "usage" to each of the three places it can fall in base64.
    frames = [
        _event("chunk", {"bytes": base64.b64encode(json.dumps({"p": padding, **i}).encode())})
        for i in inner
    ]
    (entry,) = read(render([_entry(frames)]), Path("c.yaml"))
    expected = Usage("fake.model-v1:0", 13, 5)
    assert entry_usage(entry.request, entry.response) == expected
    assert replay_usage(entry.request, entry.to_response()) == expected
