"""A reader for exactly the entries our version 2 writer produces, several times faster than
PyYAML; anything else it declines, and PyYAML reads it.

An entry the writer produces is a handful of ``name: value`` lines, where a value is a
literal block (``|``, ``|-``, ``|+``), a single-quoted string on one line, or a plain number,
key or name. This reader takes those and gives the same mapping PyYAML gives; at the first
line it is not sure of (double quotes, flow style, an anchor, a tag, a list, a plain value
YAML could read as something else), it returns ``None``. A differential test checks it
against PyYAML on every kind of entry the recorder writes.

A replay of a JSON answer reads less still (:func:`json_entry`): the entry's one-line fields,
its request's lines checked but not made, and the JSON read where it is in the file's text.

Set ``LLM_CACHE_PURE_YAML=1`` to read with PyYAML alone.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Set as AbstractSet
from typing import Any

from . import _jsontext

__all__ = ["ENABLED", "json_entry", "read_entry"]

ENABLED = os.environ.get("LLM_CACHE_PURE_YAML", "") in ("", "0")

# Stands for a line break and a block line's indentation while the fields are split apart;
# YAML cannot hold it as it is, so an entry that has it is for PyYAML.
_BLOCK_LINE = "\x00"
# What may not follow the mark of a block's first line: more indentation, or no text (a
# line of spaces, or a block of empty lines only, which YAML reads its own way).
_NOT_FIRST = frozenset({" ", "", _BLOCK_LINE})
# Plain names the writer uses as they are (JSON styles, the stream's line ending).
_NAMES = frozenset(
    {"compact", "spaced", "indent", "crlf"}
    | {
        f"{layout}{suffix}"
        for layout in ("compact", "spaced", "indent")
        for suffix in ("+ascii", "+nl", "+ascii+nl")
    }
)
_BLOCKS = frozenset({"|", "|-", "|+"})


# The patterns below are compiled when first needed: a replay of JSON answers needs none.


@functools.cache
def _stray() -> re.Pattern[str]:
    # Where an entry's lines may not be: a line break followed by anything but another line
    # break or a block's line (once its indentation was replaced by ``_BLOCK_LINE``).
    return re.compile("\n[^\n\x00]")


@functools.cache
def _int() -> re.Pattern[str]:
    return re.compile(r"[1-9][0-9]{0,17}|0")


@functools.cache
def _float() -> re.Pattern[str]:
    return re.compile(r"(?:[1-9][0-9]{0,17}|0)\.[0-9]{1,17}")


# A node id: "::" rules out every type a plain YAML scalar could be read as.
_NODE_ID = r"[A-Za-z0-9_./-][^'\"#:\s]*::[^'\"#\s]*"


@functools.cache
def _node_id() -> re.Pattern[str]:
    return re.compile(_NODE_ID)


@functools.cache
def _yaml_breaks() -> re.Pattern[str]:
    # YAML breaks lines at these too; our writer quotes them with escapes. (Compiled when a
    # text that is not ASCII first needs it: this class costs more to compile than the rest.)
    return re.compile("[\r\x85\u2028\u2029\ufeff]")


def read_entry(text: str, names: AbstractSet[str]) -> dict[str, Any] | None:
    """The fields of one entry (``- key: ...`` and the lines after it), or ``None``.

    ``names`` are the fields the format knows: an entry with any other is left to PyYAML
    (whose reading the format then refuses, naming the field).
    """
    if _breaks_line(text):
        return None
    if not text.startswith("- key: ") or not text.endswith("\n") or _BLOCK_LINE in text:
        return None  # (a last line with no line break: YAML may read it its own way)
    # Every line after the first is a field ("  name: value") or a block's content (indented
    # four spaces, or empty). With each block line's break and indentation made one mark,
    # the line breaks left are the fields' and the empty lines': splitting at the fields'
    # gives the first line, then each field with its block, done by the C string methods.
    # (A line of spaces only is read as YAML reads it: within a block, as an empty line or
    # as the spaces past the block's four; anywhere else, as no field, which declines.)
    body = text[:-1]
    parts = body.replace("\n    ", _BLOCK_LINE).split("\n  ")
    key = parts[0][7:]
    if key[:1] == "'" and key[-1:] == "'":
        key = key[1:-1]
    if not key or len(key) > 64 or key.strip("0123456789abcdef") or "\n" in parts[0]:
        return None  # not a key as the writer writes it, or lines before the first field
    data: dict[str, Any] = {"key": key}
    for part in parts[1:]:
        head, mark, lines = part.partition(_BLOCK_LINE)
        if "\n" in part:
            # Empty lines: each must be followed by another, or by a block line.
            if _stray().search(part) is not None:
                return None
            cut = head.find("\n")
            if cut >= 0:  # (empty lines before a block's first line, or after a value)
                head, mark, lines = head[:cut], "\n", head[cut + 1 :] + mark + lines
        name, sep, raw = head.partition(":")
        if not sep or name not in names or name in data:
            return None
        if raw[:1] == " ":
            raw = raw[1:]
        elif raw:
            return None
        if raw in _BLOCKS:
            value = _block(mark, lines, raw)
            if value is None:
                return None
            data[name] = value
        else:
            if mark:
                return None  # something between two fields that is no block content
            value = _scalar(name, raw)
            if value is None:
                return None
            data[name] = value
    return data


def _block(mark: str, lines: str, header: str) -> str | None:
    """A literal block's text from its lines: the first follows ``mark`` (a block line's
    break and indentation made ``_BLOCK_LINE``, or an empty line's break), each other one
    follows its own. A stream's block is most of its entry: it is copied as few times as
    can be."""
    # YAML finds a block's indentation from its first non-empty line: more than four spaces
    # there would be read differently (our writer then adds an indentation indicator).
    if mark != _BLOCK_LINE:
        stripped = lines.lstrip("\n")
        if not mark or stripped[:1] != _BLOCK_LINE or stripped[1:2] in _NOT_FIRST:
            return None
    elif lines[:1] in _NOT_FIRST:
        return None
    text = lines.replace(_BLOCK_LINE, "\n")
    if text[-1:] != "\n":  # the usual block: no empty line at its end
        return text if header == "|-" else text + "\n"
    body = text + "\n"
    kept = body.rstrip("\n")
    if header == "|":
        return kept + "\n"
    if header == "|-":
        return kept
    return body


def _scalar(name: str, raw: str) -> Any:
    """A one-line value, when it can only mean what it looks like."""
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'"):
            return None
        inner = raw[1:-1]
        if "'" in inner.replace("''", ""):
            return None
        return inner.replace("''", "'")
    if name == "key":
        return None  # only on the first line
    if name in ("ttl", "duration"):
        if _int().fullmatch(raw):
            return int(raw)
        if _float().fullmatch(raw):
            return float(raw)
        return None
    if name == "cut_short":
        return True if raw == "true" else None
    if name == "test":
        return raw if _node_id().fullmatch(raw) else None
    if name.endswith(("_json_style", "_sse_eol")):
        return raw if raw in _NAMES else None
    return None


# An entry with a JSON answer as the writer lays it out, from its key line to its response's
# last header line, matched in one pass: a block's first line indented its four spaces and no
# more, each response header line holding ": ". (A line break YAML knows, or the mark
# ``_BLOCK_LINE``, is looked for apart, by the string methods.) Any other layout (fields in
# another order, a list, a style, an empty line) is declined: the longer way reads it, or
# names its problem. The answer's own first line is looked for after the match, not in it: a
# stream's entry, whose answer follows in another field, then fails without the matcher going
# back over the request's lines to look for another reading of them.
_NUMBER = r"((?:[1-9][0-9]{0,17}|0)(?:\.[0-9]{1,17})?)"
_QUOTED = r"'([^'\n]*(?:''[^'\n]*)*)'"
_TIME = r"'([^'\n]*)'"  # (a time holds no quote)
_BLOCK = r"\|[-+]?\n    [^ \n][^\n]*(?:\n    [^\n]*)*"
_JSON_LAYOUT = (
    r"- key: [^\n]*"
    rf"\n  recorded_at: {_TIME}"
    rf"(?:\n  ttl: {_NUMBER})?"
    rf"\n  duration: {_NUMBER}"
    rf"(?:\n  test: (?:{_QUOTED}|({_NODE_ID})))?"
    r"(\n  cut_short: true)?"
    rf"\n  request: {_BLOCK}"
    rf"(?:\n  request_(?:json|text|base64): {_BLOCK})?"
    r"\n  response: \|\n    (?P<head>[1-9][0-9][0-9](?:\n    [^ \n][^\n]*?: [^\n]*)*)"
)
_RESPONSE_JSON = "\n  response_json: |\n    "


@functools.cache
def _json_layout() -> re.Pattern[str]:
    return re.compile(_JSON_LAYOUT)


def json_entry(text: str, start: int, end: int) -> tuple[dict[str, Any], str, Any] | None:
    """An entry with a JSON answer, read for its replay from ``text[start:end]``: its
    one-line fields (``recorded_at``, ``ttl``, ``duration``, ``test``, ``cut_short``), its
    response block and its answer's JSON value; or ``None``.

    Its lines up to the JSON are matched against the writer's layout in one pass, the
    request's blocks checked but not made (a replay does not use them). The JSON is read
    where it is in the file: each of its lines indented four spaces, which JSON reads as
    whitespace (a JSON string holds no line break). Any other entry is declined.
    """
    found = _json_layout().match(text, start, end)
    if found is None or not text.startswith(_RESPONSE_JSON, found.end(), end):
        return None
    first = found.end() + len(_RESPONSE_JSON)
    if text[first : first + 1] not in ("{", "[") or text.find(_BLOCK_LINE, start, first) >= 0:
        return None
    recorded_at, ttl, duration, quoted_test, plain_test, cut_short = found.group(1, 2, 3, 4, 5, 6)
    head = found.group("head")
    try:
        value, stop = _jsontext.scan(text, first)
    except (StopIteration, ValueError, RecursionError):
        return None
    # Nothing after the value but the line break that ends the entry; every line of it
    # indented as its first; no line break YAML knows and JSON does not.
    if stop + 1 != end or text[stop] != "\n":
        return None
    if text.count("\n", first, stop) != text.count("\n    ", first, stop):
        return None
    if text.find("\r", start, stop) >= 0 or (
        not text.isascii() and _yaml_breaks().search(text, start, stop) is not None
    ):
        return None
    fields: dict[str, Any] = {"recorded_at": recorded_at}
    if ttl is not None:
        fields["ttl"] = float(ttl)
    fields["duration"] = float(duration)
    if quoted_test is not None:
        fields["test"] = quoted_test.replace("''", "'")
    elif plain_test is not None:
        fields["test"] = plain_test
    if cut_short is not None:
        fields["cut_short"] = True
    return fields, head.replace("\n    ", "\n") + "\n", value


def _breaks_line(text: str) -> bool:
    """Whether ``text`` holds a line break YAML knows and Python's lines do not."""
    return ("\r" in text) if text.isascii() else _yaml_breaks().search(text) is not None
