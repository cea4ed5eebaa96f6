"""AWS event-stream framing: byte-exact round trips, every header type, and broken frames."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmcache._eventstream import Header, Message, decode, encode, encode_one


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
