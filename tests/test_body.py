"""Stored bodies: readable where possible, and always the exact bytes back (SPEC §2)."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmcache import _jsontext
from pytest_llmcache._body import (
    decode_body,
    decode_chunks,
    decompress,
    encode_body,
    encode_chunks,
    is_stream_type,
    json_style,
)

DATA = {"id": "chatcmpl-1", "choices": [{"message": {"content": "héllo ✓"}}], "n": 1.5}

BODIES = [
    pytest.param(json.dumps(DATA, separators=(",", ":"), ensure_ascii=False), "json", id="compact"),
    pytest.param(json.dumps(DATA), "json", id="spaced-ascii"),
    pytest.param(json.dumps(DATA, ensure_ascii=False), "json", id="spaced"),
    pytest.param(json.dumps(DATA, indent=2, ensure_ascii=False), "json", id="indented"),
    pytest.param(json.dumps(DATA, indent=2) + "\n", "json", id="indented-ascii-newline"),
    pytest.param(json.dumps(DATA, separators=(",", ":")) + "\n", "json", id="compact-newline"),
    pytest.param("[1,2,3]", "json", id="list"),
    pytest.param("{}", "json", id="empty-object"),
    pytest.param('{"a":1,"a":2}', "text", id="duplicate-keys"),
    pytest.param('{"n":1.50}', "text", id="float-spelling"),
    pytest.param('{"n":1e5}', "text", id="exponent"),
    pytest.param('{ "a":1}', "text", id="odd-spacing"),
    pytest.param('{"a":1}\r\n', "text", id="crlf"),
    pytest.param('  {"a":1}', "text", id="leading-space"),
    pytest.param('{"a":', "text", id="broken-json"),
    pytest.param('"just a string"', "text", id="json-scalar"),
    pytest.param("plain text, ünïcode\nsecond line\n", "text", id="text"),
    pytest.param('{"s":"\\ud83d"}', "text", id="lone-surrogate-escape"),
    pytest.param('{"s":"\\ud83d\\ude00"}', "json", id="surrogate-pair-escape"),
]


@pytest.mark.parametrize(("text", "kind"), BODIES)
def test_body_round_trip(text: str, kind: str) -> None:
    raw = text.encode()
    stored = encode_body(raw)
    assert kind in stored
    assert decode_body(stored) == raw


def test_json_body_is_stored_as_structure_with_default_style_omitted() -> None:
    stored = encode_body(b'{"b":1,"a":[true,null]}')
    assert stored == {"json": {"b": 1, "a": [True, None]}}
    assert list(stored["json"]) == ["b", "a"], "the original key order is kept"
    assert encode_body(b'{"a": 1}') == {"json": {"a": 1}, "style": "spaced"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"", {}, id="empty"),
        pytest.param(b"\xff\xfe\x00binary", {"base64": "//4AYmluYXJ5"}, id="binary"),
        pytest.param(b"\x89PNG\r\n\x1a\n", {"base64": "iVBORw0KGgo="}, id="png"),
        pytest.param(b"caf\xc3", {"base64": "Y2Fmww=="}, id="cut-utf8"),
    ],
)
def test_non_text_bodies(raw: bytes, expected: dict[str, str]) -> None:
    assert encode_body(raw) == expected
    assert decode_body(expected) == raw


def test_decode_body_of_chunks_joins_them() -> None:
    chunks = [b"data: 1\n\n", b"\xff"]
    assert decode_body({"chunks": encode_chunks(chunks)}) == b"".join(chunks)


OPENAI_EVENT = b'data: {"id":"c1","choices":[{"delta":{"content":"Hi"}}]}\n\n'
ANTHROPIC_EVENT = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
)

STREAMS = [
    pytest.param([OPENAI_EVENT, b"data: [DONE]\n\n"], ["sse", "sse"], id="openai"),
    pytest.param([ANTHROPIC_EVENT, b"event: message_stop\ndata: {}\n\n"], ["sse"] * 2, id="claude"),
    pytest.param([OPENAI_EVENT + OPENAI_EVENT], ["sse"], id="two-events-one-chunk"),
    pytest.param([OPENAI_EVENT[:20], OPENAI_EVENT[20:]], ["text", "text"], id="mid-event"),
    pytest.param([b"data: x\r\n\r\n"], ["sse"], id="crlf-gemini"),
    pytest.param([b"data: a\r\nb\n\n"], ["text"], id="mixed-line-endings"),
    pytest.param([b"data: a\rdata: b\r\r"], ["text"], id="bare-cr"),
    pytest.param([b": keep-alive\n\n"], ["text"], id="comment"),
    pytest.param([b'data:{"a":1}\n\n'], ["text"], id="no-space-after-colon"),
    pytest.param([b"data: a\ndata: b\n\n"], ["text"], id="multi-line-data"),
    pytest.param([b'data: {"a": 1}\n\n'], ["sse"], id="spaced-json-data-kept-as-string"),
    pytest.param([b"data: \n\n"], ["sse"], id="empty-data"),
    pytest.param([b"data: x\n\n\n"], ["text"], id="extra-blank-line"),
    pytest.param([b"data: \xff\xfe\n\n"], ["base64"], id="non-utf8"),
    pytest.param(["data: é".encode()[:-1], "data: é".encode()[-1:]], ["base64"] * 2, id="cut-char"),
    pytest.param([b'{"a":1}\n', b'{"b":2}\n'], ["text", "text"], id="ndjson"),
    pytest.param([], [], id="no-chunks"),
]


@pytest.mark.parametrize(("chunks", "kinds"), STREAMS)
def test_chunks_round_trip(chunks: list[bytes], kinds: list[str]) -> None:
    stored = encode_chunks(chunks)
    assert [next(iter(item)) for item in stored] == kinds
    assert decode_chunks(stored) == chunks


def test_sse_events_are_readable() -> None:
    stored = encode_chunks([ANTHROPIC_EVENT, OPENAI_EVENT + b"data: [DONE]\n\n"])
    assert stored[0] == {
        "sse": [
            {
                "event": "content_block_delta",
                "data": {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Hi"},
                },
            }
        ]
    }
    assert stored[1] == {
        "sse": [
            {"data": {"id": "c1", "choices": [{"delta": {"content": "Hi"}}]}},
            {"data": "[DONE]"},
        ]
    }


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/event-stream", True),
        ("text/event-stream; charset=utf-8", True),
        ("application/x-ndjson", True),
        ("application/json", False),
        (None, False),
        ("", False),
    ],
)
def test_is_stream_type(content_type: str | None, expected: bool) -> None:
    assert is_stream_type(content_type) is expected


PAYLOAD = b"".join(b'data: {"i":%d}\n\n' % i for i in range(200))


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("chunks", "encoding"),
    [
        pytest.param([gzip.compress(PAYLOAD)], "gzip", id="gzip"),
        pytest.param(_split(gzip.compress(PAYLOAD), 7), "gzip", id="gzip-split"),
        pytest.param([gzip.compress(PAYLOAD)], "x-gzip", id="x-gzip"),
        pytest.param([gzip.compress(PAYLOAD)], "GZIP, identity", id="gzip-identity"),
        pytest.param([zlib.compress(PAYLOAD)], "deflate", id="deflate-zlib"),
        pytest.param(_split(_raw_deflate(PAYLOAD), 5), "deflate", id="deflate-raw"),
        pytest.param([gzip.compress(zlib.compress(PAYLOAD))], "deflate, gzip", id="two-codings"),
        pytest.param(
            [gzip.compress(PAYLOAD[:100]), gzip.compress(PAYLOAD[100:])], "gzip", id="members"
        ),
        pytest.param([gzip.compress(PAYLOAD) + b"\0\0"], "gzip", id="trailing-padding"),
        pytest.param([PAYLOAD], "identity", id="identity"),
    ],
)
def test_decompress(chunks: list[bytes], encoding: str) -> None:
    decoded = decompress(chunks, encoding)
    assert decoded is not None
    assert b"".join(decoded) == PAYLOAD
    assert all(decoded), "no empty chunks"


def test_decompress_keeps_stream_boundaries() -> None:
    compressor = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    events = [b'data: {"i":%d}\n\n' % i for i in range(3)]
    chunks = [compressor.compress(e) + compressor.flush(zlib.Z_SYNC_FLUSH) for e in events]
    chunks[-1] += compressor.flush()
    assert decompress(chunks, "gzip") == events


@pytest.mark.parametrize(
    ("chunks", "encoding", "expected"),
    [
        pytest.param([gzip.compress(PAYLOAD)], "compress", None, id="unknown"),
        pytest.param([gzip.compress(PAYLOAD)], "gzip, snappy", None, id="unknown-outer"),
        pytest.param([gzip.compress(PAYLOAD)[:-8]], "gzip", None, id="truncated-gzip"),
        pytest.param(_split(gzip.compress(PAYLOAD), 9)[:-2], "gzip", None, id="truncated-split"),
        pytest.param([b"not gzip at all"], "gzip", None, id="garbage"),
        pytest.param([b"not deflate at all"], "deflate", None, id="garbage-deflate"),
        pytest.param([], "gzip", [], id="empty"),
        pytest.param([b""], "gzip", [], id="empty-chunk"),
    ],
)
def test_decompress_failures(
    chunks: list[bytes], encoding: str, expected: list[bytes] | None
) -> None:
    assert decompress(chunks, encoding) == expected


# -- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    value = draw(st.dictionaries(st.text(), json_values, max_size=5) | st.lists(json_values))
    indent = draw(st.sampled_from([None, 2]))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]))
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=draw(st.booleans()))
    return (text + draw(st.sampled_from(["", "\n"]))).encode("utf-8", "surrogatepass")


@settings(max_examples=50, deadline=None)
@given(json_bodies() | st.binary() | st.text().map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_body_round_trip_property(raw: bytes) -> None:
    stored = encode_body(raw)
    assert len(stored) <= 2
    assert decode_body(stored) == raw


sse_fields = st.sampled_from(["data", "event", "id", "retry"])
sse_values = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20),
    json_values.map(lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)),
    st.just("[DONE]"),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> list[bytes]:
    events = draw(
        st.lists(
            st.dictionaries(sse_fields, sse_values, min_size=1, max_size=3), min_size=1, max_size=6
        )
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = "".join(
        "".join(f"{k}: {v}{newline}" for k, v in e.items()) + newline for e in events
    ).encode("utf-8", "surrogatepass")
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=5)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if a < b]


@settings(max_examples=50, deadline=None)
@given(sse_streams() | st.lists(st.binary(), max_size=5))
def test_chunks_round_trip_property(chunks: list[bytes]) -> None:
    stored = encode_chunks(chunks)
    assert len(stored) == len(chunks)
    assert decode_chunks(stored) == chunks


def test_base64_is_standard() -> None:
    stored = encode_body(bytes(range(256)))
    assert base64.b64decode(stored["base64"], validate=True) == bytes(range(256))


STYLE_OPTIONS: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":")},
    "spaced": {"separators": (", ", ": ")},
    "indent": {"indent": 2, "separators": (",", ": ")},
}


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(json_values, st.floats(), st.dictionaries(st.text(), json_values)),
    st.sampled_from(sorted(STYLE_OPTIONS)),
    st.booleans(),
    st.booleans(),
)
def test_each_json_style_writes_what_json_dumps_writes(
    value: object, layout: str, ascii_only: bool, newline: bool
) -> None:
    name = layout + ("+ascii" if ascii_only else "") + ("+nl" if newline else "")
    expected = json.dumps(value, ensure_ascii=ascii_only, **STYLE_OPTIONS[layout])
    assert json_style(name)(value) == expected + ("\n" if newline else "")


def test_a_json_style_refuses_what_json_refuses_and_then_still_writes() -> None:
    compact = json_style("compact")
    box: dict[str, object] = {"a": [1], "b": object()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact(box)
    box["b"] = box["a"]
    assert compact(box) == '{"a":[1],"b":[1]}'


JSON_TEXTS = [
    '{"a": [1, 2.5, "x", null, true]}',
    '{"a": 1}\n',
    "[1, 2]\n\n",
    "[1, 2] \n",
    "[1, 2]\r\n",
    "[1, 2] x",
    "[1, 2]\nx",
    "  [1, 2]",
    "\ufeff[1]",
    "{",
    "[1,]",
    '{"a" 1}',
    "[NaN, Infinity]",
    '"text"',
    "12",
    "",
    "\n",
    "[" * 100_000,
]


def _loads_outcome(loads: Any, text: str) -> object:
    try:
        return ("value", loads(text))
    except (ValueError, RecursionError) as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize("text", JSON_TEXTS, ids=lambda t: repr(t)[:30])
def test_json_text_parsed_gives_what_json_loads_gives(text: str) -> None:
    assert _loads_outcome(_jsontext.parse, text) == _loads_outcome(json.loads, text)


@settings(max_examples=100, deadline=None)
@given(json_bodies(), st.sampled_from(["", " ", "\n", "x", "]", "\n\n", "\t"]))
def test_json_text_parsed_gives_what_json_loads_gives_property(raw: bytes, end: str) -> None:
    text = raw.decode("utf-8", "surrogatepass") + end
    assert _loads_outcome(_jsontext.parse, text) == _loads_outcome(json.loads, text)
