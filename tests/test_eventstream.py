"""AWS event-stream framing: byte-exact round trips, every header type, and broken frames."""

from __future__ import annotations

import re
import struct
import uuid
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmcache._eventstream import (
    Header,
    Message,
    decode,
    encode,
    encode_one,
    headers_text,
    parse_headers,
)


def _ints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


_NAMES = st.text(max_size=20).filter(lambda name: len(name.encode()) <= 255)
_HEADERS = st.one_of(
    st.builds(Header, _NAMES, st.just("bool"), st.booleans()),
    st.builds(Header, _NAMES, st.just("byte"), _ints(8)),
    st.builds(Header, _NAMES, st.just("short"), _ints(16)),
    st.builds(Header, _NAMES, st.just("int"), _ints(32)),
    st.builds(Header, _NAMES, st.just("long"), _ints(64)),
    st.builds(Header, _NAMES, st.just("timestamp"), _ints(64)),
    st.builds(Header, _NAMES, st.just("bytes"), st.binary(max_size=40)),
    st.builds(Header, _NAMES, st.just("string"), st.text(max_size=40)),
    st.builds(Header, _NAMES, st.just("uuid"), st.uuids()),
)
_MESSAGES = st.builds(Message, st.lists(_HEADERS, max_size=6).map(tuple), st.binary(max_size=200))


@given(st.lists(_MESSAGES, max_size=5))
def test_messages_round_trip_byte_exact(messages: list[Message]) -> None:
    data = encode(messages)
    assert decode(data) == messages
    assert encode(decode(data) or []) == data


@given(_MESSAGES.filter(lambda m: len({h.name for h in m.headers}) == len(m.headers)))
def test_botocore_reads_what_is_encoded(message: Message) -> None:
    # botocore refuses a repeated header name; the framing itself allows it.
    eventstream = pytest.importorskip("botocore.eventstream")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(encode_one(message))
    (parsed,) = list(buffer)
    assert parsed.payload == message.payload
    expected = {h.name: h.value for h in message.headers}
    for name, value in expected.items():
        seen = parsed.headers[name]
        assert seen == (value.bytes if isinstance(value, uuid.UUID) else value), name


def _frame(headers: bytes, payload: bytes) -> bytes:
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def test_every_wire_type_is_read() -> None:
    headers = (
        b"\x01t\x00"
        + b"\x01f\x01"
        + b"\x01b\x02\xff"
        + b"\x01s\x03\x01\x00"
        + b"\x01i\x04\x00\x00\x01\x00"
        + b"\x01l\x05" + (2**40).to_bytes(8, "big")
        + b"\x01y\x06\x00\x02\x00\xff"
        + b"\x01x\x07\x00\x03abc"
        + b"\x01d\x08" + (1_700_000_000_000).to_bytes(8, "big")
        + b"\x01u\x09" + bytes(range(16))
    )  # fmt: skip
    assert decode(_frame(headers, b"{}")) == [
        Message(
            (
                Header("t", "bool", True),
                Header("f", "bool", False),
                Header("b", "byte", -1),
                Header("s", "short", 256),
                Header("i", "int", 256),
                Header("l", "long", 2**40),
                Header("y", "bytes", b"\x00\xff"),
                Header("x", "string", "abc"),
                Header("d", "timestamp", 1_700_000_000_000),
                Header("u", "uuid", uuid.UUID(bytes=bytes(range(16)))),
            ),
            b"{}",
        )
    ]


GOOD = _frame(b"\x0b:event-type\x07\x00\x05chunk", b'{"a":1}')


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (GOOD[:-1], "truncated"),
        (GOOD + GOOD[:5], "trailing bytes"),
        (GOOD[:-1] + bytes([GOOD[-1] ^ 1]), "message CRC"),
        (GOOD[:11] + bytes([GOOD[11] ^ 1]) + GOOD[12:], "prelude CRC"),
        (_frame(b"\x01a\x0a", b""), "unknown type 10"),
        (_frame(b"\x01a\x07\x00\x05ab", b""), "string longer than the headers"),
        (_frame(b"\x01a\x07\x00\x01\xff", b""), "string not UTF-8"),
        (_frame(b"\x01\xff\x00", b""), "name not UTF-8"),
        (_frame(b"\x05ab", b""), "name past the headers"),
        (_frame(b"\x01a\x09" + bytes(15), b""), "short uuid"),
        (b"data: {}\n\n", "not frames"),
    ],
)
def test_anything_but_exact_frames_is_declined(data: bytes, why: str) -> None:
    assert decode(data) is None, why


def test_empty_stream_is_no_messages() -> None:
    assert decode(b"") == []


@pytest.mark.parametrize(
    "header",
    [
        Header("b", "byte", 128),
        Header("s", "short", -(2**15) - 1),
        Header("l", "long", 2**63),
        Header("x", "string", b"bytes"),
        Header("y", "bytes", "text"),
        Header("t", "bool", 1),
        Header("n" * 256, "string", ""),
        Header("v", "string", "x" * 65536),
        Header("q", "float", 1.5),  # type: ignore[arg-type]
    ],
)
def test_a_header_that_cannot_be_framed_is_refused(header: Header) -> None:
    with pytest.raises(ValueError, match="header"):
        encode_one(Message((header,), b""))


def _unsayable(header: Header) -> bool:
    """A header one ``name: value`` line cannot hold."""
    name, value = header.name, header.value
    return bool(
        # A typed header's line reads "name (type): value": a name ending in ":" breaks it too.
        ": " in (name if header.type == "string" else f"{name} (")
        or "\n" in name
        or (header.type == "string" and "\n" in str(value))
        or (
            header.type == "string"
            and re.fullmatch(r".* \((bool|byte|short|int|long|bytes|timestamp|uuid)\)", name, re.S)
        )
    )


@given(st.lists(_HEADERS, max_size=6).map(tuple))
def test_headers_as_lines_read_back_exactly_or_are_declined(headers: tuple[Header, ...]) -> None:
    text = headers_text(headers)
    assert (text is None) == any(_unsayable(h) for h in headers)
    if text is not None:
        assert parse_headers(text) == headers


def test_headers_as_lines() -> None:
    headers = (
        Header(":event-type", "string", "chunk"),
        Header("empty", "string", ""),
        Header("ok", "bool", True),
        Header("n", "long", -5),
        Header("raw", "bytes", b"\xff"),
    )
    text = ":event-type: chunk\nempty: \nok (bool): true\nn (long): -5\nraw (bytes): /w==\n"
    assert headers_text(headers) == text
    assert parse_headers(text) == headers
    assert headers_text((Header("a: b", "string", "c"),)) is None
    assert headers_text((Header("a (int)", "string", "3"),)) is None
    assert headers_text(()) == ""


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("no separator", "is not 'name: value'"),
        ("n (int): x", "'x' is not a int value"),
        ("n (byte): 200", "does not fit a byte"),
        ("n (uuid): 1234", "is not a uuid value"),
        ("n (bytes): ***", "is not a bytes value"),
        ("n (bool): yes", "is not a bool value"),
    ],
)
def test_a_wrong_header_line_is_named(line: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_headers(line + "\n")
