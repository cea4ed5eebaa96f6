"""The fast version 2 reader gives what PyYAML gives, on every kind of entry the recorder
writes, or declines; and it does not decline the ordinary ones."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_llmcache import _yaml
from pytest_llmcache._capture import make_entry
from pytest_llmcache._cassette import Cassette
from pytest_llmcache._entry import CassetteError, Entry
from pytest_llmcache._exchange import Request
from pytest_llmcache._fast_v2 import json_entry, read_entry
from pytest_llmcache._format_v2 import (
    _COMPACT,
    _READ_AHEAD,
    _scan,
    _writers_head,
    from_data,
    read,
    render,
)
from pytest_llmcache._format_v2 import _KNOWN as KNOWN

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cassettes"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# Text that stresses YAML: quotes, colons, hashes, indentation, line breaks, unicode, numbers.
tricky = st.text(
    st.sampled_from([*"ab :#'\"\\-|>&*!%@`{}[],?\n\t ", "é", "\u2028", "0", "1", "."]),
    max_size=30,
)
texts = st.one_of(tricky, st.text(max_size=20), st.sampled_from(["yes", "null", "1.5", "~"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
json_styles: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": ")},
        {"indent": 2},
        {"ensure_ascii": True, "separators": (",", ":")},
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, list[bytes]]:
    kind = draw(st.sampled_from(["json", "sse", "text", "binary", "empty", "chunks"]))
    if kind == "json":
        value = draw(
            st.one_of(
                st.dictionaries(texts, json_values, max_size=4), st.lists(json_values, max_size=3)
            )
        )
        text = json.dumps(value, **draw(json_styles)) + draw(st.sampled_from(["", "\n"]))
        return "application/json", [text.encode()]
    if kind == "sse":
        events = draw(st.lists(json_values, min_size=1, max_size=4))
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        chunks = [
            f"data: {json.dumps(e, separators=(',', ':'))}{eol}{eol}".encode() for e in events
        ]
        return "text/event-stream", [*chunks, f"data: [DONE]{eol}{eol}".encode()]
    if kind == "chunks":
        parts = draw(st.lists(texts, min_size=1, max_size=3))
        return "text/event-stream", [p.encode() for p in parts]
    if kind == "text":
        return "text/plain", [draw(texts).encode()]
    if kind == "binary":
        return "application/octet-stream", [draw(st.binary(max_size=40))]
    return "application/json", [b""]


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    content_type, chunks = draw(bodies())
    request_body = json.dumps(draw(st.dictionaries(texts, json_values, max_size=3))).encode()
    headers = tuple(
        (name, value)
        for name, value in draw(
            st.lists(
                st.tuples(st.sampled_from(["x-a", "x-request-id", "openai-model", "vary"]), texts),
                max_size=3,
                unique_by=lambda h: h[0],
            )
        )
        if "\n" not in value and "\r" not in value and value == value.strip()
    )
    test = draw(
        st.one_of(
            st.none(),
            st.builds(
                lambda t: f"tests/test_x.py::test_y[{t}]", texts.filter(lambda t: "\n" not in t)
            ),
        )
    )
    return make_entry(
        key=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        request=Request(
            draw(st.sampled_from(["POST", "GET"])),
            "https://api.example.com/v1/x?q="
            + draw(st.from_regex(r"[a-z0-9]{0,5}", fullmatch=True)),
            (("content-type", "application/json"),),
            request_body,
        ),
        status=draw(st.sampled_from([200, 201, 400, 404])),
        headers=(("content-type", content_type), *headers),
        chunks=chunks,
        match_headers=(),
        ttl=draw(st.one_of(st.none(), st.integers(1, 10**7), st.floats(0.5, 1e6))),
        duration=draw(st.floats(0, 100)),
        now=NOW,
        secrets=(),
        test=test,
        cut_short=draw(st.booleans()),
    )


def _slices(text: str) -> list[str]:
    """Each entry's text, as the version 2 reader finds it (none if it reads the file whole:
    a line break YAML knows and Python's lines do not, such as U+2028, makes it do so)."""
    found = []
    for entry in read(text, Path("c.yaml")):
        source = entry.source
        if source.text is None:
            return []
        found.append(source.text[source.start : source.end])
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=1, max_size=3))
def test_the_fast_reader_agrees_with_pyyaml_or_declines(made: list[Entry]) -> None:
    text = render(made)
    slices = _slices(text)
    assert len(slices) in (0, len(made))
    for piece in slices:
        piece = piece if piece.endswith("\n") else piece + "\n"
        expected = _yaml.load(piece)
        assert isinstance(expected, list)
        fast = read_entry(piece, KNOWN)
        if fast is not None:
            assert fast == expected[0]
            assert [type(v) for v in fast.values()] == [type(v) for v in expected[0].values()]
    # And the entries read back replay the same bytes, whichever reader read them.
    for before, after in zip(made, read(text, Path("c.yaml")), strict=True):
        assert after.to_response().chunks == before.to_response().chunks
        assert after.to_response().headers == before.to_response().headers


def test_ordinary_entries_are_read_by_the_fast_reader() -> None:
    files = sorted(EXAMPLES.rglob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text("utf-8")
        assert _slices(text), "the writer's layout is found"
        for piece in _slices(text):
            piece = piece if piece.endswith("\n") else piece + "\n"
            fast = read_entry(piece, KNOWN)
            assert fast is not None, piece[:200]
            assert fast == _yaml.load(piece)[0]  # type: ignore[index]
        assert Cassette.load(path).entries


def test_anything_unusual_is_left_to_pyyaml() -> None:
    base = "- key: 0a1b\n  recorded_at: '2026-01-01T00:00:00Z'\n  request: |\n    GET http://x/\n"
    assert read_entry(base + "  response: |\n    200\n", KNOWN) is not None
    for odd in (
        '  response: "200\\n"\n',  # double quotes: escapes
        "  response: &a |\n    200\n",  # an anchor
        "  response: !!str |\n    200\n",  # a tag
        "  response: {a: 1}\n",  # flow style
        "  ttl: 0x10\n",  # a number YAML 1.1 reads its own way
        "  ttl: 1e3\n",
        "  test: yes\n",  # a plain value YAML would not read as text
        "  response: |2\n      200\n",  # an indentation indicator
        "  response: |\n     200\n",  # more indented than the writer's blocks
        "  response: |\n    200\n  \n",  # a line of spaces
        "  response: |\n      \n    200\n",  # spaces only, before the first line: YAML
        # takes the block's indentation from it
        "  ttl: 5\n      \n",  # spaces only, after a one-line value
        "  response: |\n    \n",  # a block of empty lines only: YAML reads it as no text
        "  response: |\n    \n    \n",
        "  response: |\n\n\n",
        "  allow_secrets:\n  - sk-*\n",  # a list
        "  request: |\n    again\n",  # a field twice
        "  colour: 'red'\n",  # a field the format does not know (refused, by name, later)
    ):
        assert read_entry(base + odd, KNOWN) is None, odd


@pytest.mark.parametrize(
    "block",
    [
        "    200\n      \n    x\n",  # spaces past the indentation: those spaces
        "    200\n    \n    x\n",  # the indentation only: an empty line
        "    200\n    x\n        \n",  # at the end
        "    200\n    \n",
        "\n    200\n",  # empty lines before the first line, and after the last
        "\n\n    200\n",
        "    200\n\n",
        "    200\n\n\n",
        "\n    200\n\n    x\n\n",
    ],
)
@pytest.mark.parametrize("header", ["|", "|-", "|+"])
@pytest.mark.parametrize("after", ["", "  ttl: 5\n"])
def test_a_line_of_spaces_in_a_block_is_read_as_pyyaml_reads_it(
    block: str, header: str, after: str
) -> None:
    text = f"- key: 0a1b\n  recorded_at: '2026-01-01T00:00:00Z'\n  response: {header}\n"
    text += block + after
    fast = read_entry(text, KNOWN)
    assert fast is not None
    assert fast == _yaml.load(text)[0]  # type: ignore[index]


@pytest.mark.parametrize("body", [b"...\n", b"x\n...\n", b"a\n\n...\n\n", b"...\n\n"])
def test_a_body_ending_in_a_document_end_marker_keeps_it(body: bytes) -> None:
    made = _made([body], "text/plain")
    text = render([made, made])
    assert [e.to_response().chunks for e in read(text, Path("c.yaml"))] == [(body,), (body,)]


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: 1\n\n\n", b"data: 2\n\n"],  # an empty line after an event
        [b"data: 1\n\n", b"data: 2\n\n\n"],
        [b"data: 1\n\n\n\n"],
        [b"data: 1\r\n\r\n\r\n", b"data: 2\r\n\r\n"],
        [b"data: 1\n\n", b"data: 2\n\n"],
    ],
)
def test_a_stream_replays_chunk_for_chunk_whatever_its_blank_lines(chunks: list[bytes]) -> None:
    text = render([_made(chunks, "text/event-stream")])
    assert read(text, Path("c.yaml"))[0].to_response().chunks == tuple(chunks)
    assert ("response_sse:" in text) == (chunks == [b"data: 1\n\n", b"data: 2\n\n"])


@st.composite
def edited(draw: st.DrawFn) -> str:
    """An entry as the writer wrote it, then edited as by hand: characters put in, lines
    dropped or doubled, indentation changed."""
    piece = _slices(render([draw(entries())]))
    text = piece[0] if piece else "- key: 0a1b\n  recorded_at: '2026-01-01T00:00:00Z'\n"
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["insert", "drop", "double", "indent", "dedent"]))
        if action == "insert":
            line = lines[at]
            column = draw(st.integers(0, len(line)))
            lines[at] = line[:column] + draw(tricky) + line[column:]
        elif action == "drop":
            del lines[at]
        elif action == "double":
            lines.insert(at, lines[at])
        elif action == "indent":
            lines[at] = " " * draw(st.integers(1, 3)) + lines[at]
        else:
            lines[at] = lines[at][draw(st.integers(1, 3)) :]
        text = "\n".join(lines)
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited())
def test_an_edited_entry_is_read_as_pyyaml_reads_it_or_declined(text: str) -> None:
    fast = read_entry(text, KNOWN)
    if fast is None:
        return
    expected = _yaml.load(text if text.endswith("\n") else text + "\n")
    assert isinstance(expected, list)
    assert len(expected) == 1
    assert fast == expected[0]
    assert [type(v) for v in fast.values()] == [type(v) for v in expected[0].values()]


def _made(chunks: list[bytes], content_type: str, key: str = "0a", request: bytes = b"{}") -> Entry:
    """An entry as the recorder makes it, for a POST answered with ``chunks``."""
    return make_entry(
        key=key,
        request=Request("POST", "https://api.example.com/v1/x", (), request),
        status=200,
        headers=(("content-type", content_type),),
        chunks=chunks,
        match_headers=(),
        ttl=None,
        duration=0.5,
        now=NOW,
        secrets=(),
    )


def _two_entries() -> str:
    return render(
        [
            _made([b'{"answer": "%s"}' % k.encode()], "application/json", k, b'{"n": 1}')
            for k in ("0a", "0b")
        ]
    )


def test_a_top_level_comment_between_entries_is_read_by_pyyaml(tmp_path: Path) -> None:
    text = _two_entries()
    second = text.index("- key: 0b")
    path = tmp_path / "c.yaml"
    path.write_text(text[:second] + "# kept by hand\n" + text[second:])
    first, other = Cassette.load(path).entries
    assert read_entry(first.source.text[first.source.start : first.source.end], KNOWN) is None
    assert first.to_response().chunks == (b'{"answer": "0a"}',)
    assert other.to_response().chunks == (b'{"answer": "0b"}',)


@pytest.mark.parametrize("where", ["between", "after"])
def test_a_top_level_field_among_entries_names_the_file_and_its_line(
    tmp_path: Path, where: str
) -> None:
    text = _two_entries()
    at = text.index("- key: 0b") if where == "between" else len(text)
    path = tmp_path / "c.yaml"
    path.write_text(text[:at] + "note: by hand\n" + text[at:])
    line = text[:at].count("\n") + 1
    first, other = Cassette.load(path).entries
    damaged = first if where == "between" else other
    with pytest.raises(CassetteError, match=rf"c\.yaml:{line}: not a valid cassette"):
        damaged.to_response()


def test_a_key_line_edited_by_hand_is_read_by_pyyaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(_two_entries().replace("- key: 0b\n", "- key: 0b  # the second\n"))
    first, other = Cassette.load(path).entries
    assert (first.key, other.key) == ("0a", "0b")
    assert other.to_response().chunks == (b'{"answer": "0b"}',)


@pytest.mark.parametrize("end", ["\u2028", "\u2029", "\x85", "\r"])
def test_a_chunk_that_ends_in_a_line_break_only_yaml_knows_keeps_the_entries_after_it(
    tmp_path: Path, end: str
) -> None:
    # Written as a block, such a chunk ends its line for YAML but not for Python: the next
    # entry starts on that same line of the file.
    made = [
        _made([b"{}"], "application/json", "0a"),
        _made([("data: 0" + end).encode(), b"\n0" + end.encode()], "text/event-stream", "0b"),
        _made([b"{}"], "application/json", "0c"),
    ]
    path = tmp_path / "c.yaml"
    path.write_text(render(made), "utf-8")
    back = Cassette.load(path).entries
    assert [e.key for e in back] == ["0a", "0b", "0c"]
    assert [e.to_response().chunks for e in back] == [e.to_response().chunks for e in made]


@pytest.mark.parametrize(
    "edit",
    [
        # The key's line and the next one swapped (the mapping's fields in another order).
        lambda key, after: f"- {after[2:]}\n  {key[2:]}",
        lambda key, after: key.replace("- key:", '- "key":') + "\n" + after,
    ],
    ids=["key-not-first", "key-quoted"],
)
def test_an_entry_whose_first_line_was_edited_by_hand_is_read_by_pyyaml(
    tmp_path: Path, edit: Any
) -> None:
    text = _two_entries()
    second = text.index("- key: 0b")
    key, after, rest = text[second:].split("\n", 2)
    edited = text[:second] + edit(key, after) + "\n" + rest
    assert _yaml.load(edited) == _yaml.load(text)  # still the same entries, as YAML reads them
    path = tmp_path / "c.yaml"
    path.write_text(edited)
    first, other = Cassette.load(path).entries
    assert first.to_response().chunks == (b'{"answer": "0a"}',)
    assert other.to_response().chunks == (b'{"answer": "0b"}',)


def test_a_text_past_u_ffff_with_a_line_break_yaml_knows_reads_back_the_same() -> None:
    """Characters past U+FFFF are written as they are, unless the text also holds a line
    break YAML knows that a block cannot keep (U+0085): then escaped, and still the same."""
    for text, kept in (
        ("\U0001f389 party", True),
        ("\x85    \U0001f389", False),
        ("a\u2028\U0001f389\nb", True),  # (a break a block keeps, as PyYAML reads it)
    ):
        made = _made([json.dumps({text: None}, ensure_ascii=False).encode()], "application/json")
        rendered = render([made])
        (entry,) = read(rendered, Path("c.yaml"))
        assert entry.to_response().chunks == made.to_response().chunks, text
        assert ("\U0001f389" in rendered) is kept, text


def _read_by_pyyaml(text: str) -> Entry:
    """The entry ``text`` as PyYAML reads it, fields and response checked."""
    data = _yaml.load(text)
    assert isinstance(data, list)
    assert len(data) == 1
    (entry,) = from_data({"version": 2, "entries": data}, Path("c.yaml"))
    return entry


def _agrees(found: tuple[dict[str, Any], str, Any], expected: Entry) -> None:
    fields, head, value = found
    for name in ("recorded_at", "ttl", "duration", "test", "cut_short"):
        stored = fields.get(name)
        assert stored == getattr(expected, name) or (stored is None and name == "cut_short")
    assert not expected.allow_secrets
    response = expected.to_response()
    assert _writers_head(head) == (response.status, response.headers)
    assert (_COMPACT(value).encode(),) == response.chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries(), min_size=1, max_size=3))
def test_a_replay_of_a_json_answer_reads_what_pyyaml_reads_or_declines(made: list[Entry]) -> None:
    text = render(made)
    for before, after in zip(made, read(text, Path("c.yaml")), strict=True):
        source = after.source
        if source.text is None:
            continue  # read whole by PyYAML
        found = json_entry(text, source.start, source.end)
        if found is None:
            continue
        piece = text[source.start : source.end]
        _agrees(found, _read_by_pyyaml(piece))
        assert (_COMPACT(found[2]).encode(),) == before.to_response().chunks


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited())
def test_an_edited_json_entry_is_replayed_as_pyyaml_reads_it_or_declined(text: str) -> None:
    text = text if text.endswith("\n") else text + "\n"
    index = _scan("version: 2\nentries:\n" + text, Path("c.yaml"))
    if index is None or len(index) != 1:
        return  # not found by the index: read whole by PyYAML
    entry = index[0]
    source = entry.source
    found = json_entry(source.text, source.start, source.end)
    if found is None:
        return
    try:
        expected = _read_by_pyyaml(text)
    except CassetteError:  # a value the format refuses: the replay refuses it too
        with pytest.raises(CassetteError):
            _ = entry.recorded_at, entry.to_response()
        return
    _agrees(found, expected)
    assert (entry.recorded_at, entry.ttl, entry.duration, entry.test, entry.cut_short) == (
        expected.recorded_at,
        expected.ttl,
        expected.duration,
        expected.test,
        expected.cut_short,
    )
    assert entry.to_response().chunks == expected.to_response().chunks


def test_an_ordinary_json_answer_is_replayed_without_reading_its_request() -> None:
    seen = 0
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for entry in Cassette.load(path).entries:
            source = entry.source
            piece = source.text[source.start : source.end]
            if "\n  response_json: |" not in piece or "_json_style" in piece:
                continue
            found = json_entry(source.text, source.start, source.end)
            assert found is not None, piece[:300]
            _agrees(found, _read_by_pyyaml(piece))
            assert entry.to_response().chunks == _read_by_pyyaml(piece).to_response().chunks
            seen += 1
    assert seen >= 3


_JSON_ENTRY = (
    "- key: 0a1b\n"
    "  recorded_at: '2026-01-01T00:00:00Z'\n"
    "  duration: 0.5\n"
    "  request: |\n"
    "    POST http://x/\n"
    "    content-type: application/json\n"
    "  request_json: |\n"
    "    {\n"
    '      "q": 1\n'
    "    }\n"
    "  response: |\n"
    "    200\n"
    "    content-type: application/json\n"
    "  response_json: |\n"
    "    {\n"
    '      "a": [\n'
    "        1\n"
    "      ]\n"
    "    }\n"
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("        1\n      ]\n    }\n", "        1\n      ]\n  }\n"),  # a line left the block
        ('      "a": [\n', '      "a":\r [\n'),  # a line break to YAML, whitespace to JSON
        ("      ]\n    }\n", "      ]\n    }\n  response_json_style: spaced\n"),  # after it
        ("      ]\n    }\n", "      ]\n    } x\n"),  # more than the JSON
        ("    200\n", "    200\n\n"),  # an empty line in the response block
        ("    content-type: application/json\n  response_json", "      x: y\n  response_json"),
        ("  request_json: |\n    {\n", "  request_json: |\n   {\n"),  # a request line askew
        ("  request_json: |\n", "  request_json: |\n\n"),  # an empty line in the request
        ("    POST http://x/\n", "    POST http://x/\n x\n"),  # a line out of the block
        ("  request_json: |\n", "  colour: |\n"),  # a field the format does not know
        ("  request_json: |\n", "  request: |\n"),  # a field twice
        ("  duration: 0.5\n", "  duration: 0.5\n  duration: 0.5\n"),
        ("  duration: 0.5\n", "  duration: 1e3\n"),  # a number YAML reads its own way
        ("  duration: 0.5\n", "  duration: 0.5\n  allow_secrets:\n  - sk-*\n"),  # a list
        ("  request: |\n    POST", "  request: |\n     POST"),  # a block indented further
        ("  request: |\n", "  request: |2\n"),  # an indentation indicator
        ('{\n      "a"', '{\n      "\u2028a"'),  # a line break to YAML in a string
        ("    POST http://x/\n", "    POST http://x/\x00\n"),  # a character YAML refuses
        ("    POST http://x/\n", "    POST http://x/\r\n"),  # a line break to YAML
        ("  response_json: |\n", "  response_text: |\n"),  # the answer as text
        ("  duration: 0.5\n", ""),  # a field the replay needs, missing
        ("  response: |\n    200\n", "  response: |\n    200 OK\n"),  # a status askew
        (
            "    content-type: application/json\n  response_json",
            "    content-type\n  response_json",
        ),
    ],
)
def test_anything_unusual_in_a_json_entry_takes_the_longer_way(old: str, new: str) -> None:
    assert json_entry(_JSON_ENTRY, 0, len(_JSON_ENTRY)) is not None
    assert old in _JSON_ENTRY
    text = _JSON_ENTRY.replace(old, new, 1)
    assert json_entry(text, 0, len(text)) is None


def _chat_entry(
    key: str, asked: bytes, answer: bytes, *, test: str | None = None, duration: float = 0.5
) -> Entry:
    """An entry as a chat call records it: JSON asked, JSON answered."""
    return make_entry(
        key=key,
        request=Request("POST", "http://x/", (("content-type", "application/json"),), asked),
        status=200,
        headers=(("content-type", "application/json"),),
        chunks=[answer],
        match_headers=(),
        ttl=None,
        duration=duration,
        now=NOW,
        secrets=(),
        test=test,
        cut_short=False,
    )


@pytest.mark.parametrize("test", ["tests/t.py::test[a: b]", "tests/t.py::test[it's: x]"])
def test_a_quoted_test_id_is_replayed_as_written(test: str) -> None:
    made = _chat_entry("0a1b", b'{"q":1}', b'{"a":1}', test=test)
    text = render([made])
    (entry,) = read(text, Path("c.yaml"))
    source = entry.source
    found = json_entry(source.text, source.start, source.end)
    assert found is not None, text
    assert found[0]["test"] == test
    assert (entry.test, entry.to_response().chunks) == (test, (b'{"a":1}',))


@st.composite
def json_answers(draw: st.DrawFn) -> Entry:
    """A chat call's entry, compact JSON asked and answered, as the fast reader reads it."""
    return _chat_entry(
        draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        json.dumps({"q": draw(texts)}, separators=(",", ":")).encode(),
        json.dumps(draw(json_values), separators=(",", ":")).encode(),
        duration=draw(st.sampled_from([0.0, 0.5, 2.25])),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(json_answers(), entries()), min_size=1, max_size=_READ_AHEAD + 2),
    st.randoms(use_true_random=False),
)
def test_each_entry_of_a_file_replays_its_own_answer_in_any_order(
    made: list[Entry], random: Any
) -> None:
    # A small file's JSON entries are read together when the first is asked for; a larger
    # one's each on its own. Either way, each entry, asked for in any order and again, is
    # its own.
    text = render(made)
    index = read(text, Path("c.yaml"))
    order = [*range(len(made)), *range(len(made))]
    random.shuffle(order)
    for position in order:
        entry, expected = index[position], made[position]
        assert entry.key == expected.key
        assert entry.to_response() == expected.to_response()
        assert (entry.recorded_at, entry.duration, entry.test) == (
            expected.recorded_at,
            expected.duration,
            expected.test,
        )


def test_a_small_file_keeps_nothing_of_the_entries_it_handed_out() -> None:
    made = [_chat_entry(f"{n:032x}", b'{"q":%d}' % n, b'{"a":%d}' % n) for n in range(3)]
    index = _scan(render(made), Path("c.yaml"))
    assert index is not None
    assert index[1].to_response().chunks == (b'{"a":1}',)
    assert index._ahead is not None  # read together, at the first ask
    assert index._ahead[1] is None
    assert all(index._ahead[n] for n in (0, 2))
    assert [index[n].to_response().chunks for n in (0, 2)] == [(b'{"a":0}',), (b'{"a":2}',)]
    assert index._ahead == [None, None, None]
