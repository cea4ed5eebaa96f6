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

# Where an entry's lines may not be: a line break followed by anything but another line break
# or a block's line (once its four spaces of indentation were replaced by ``_BLOCK_LINE``).
_STRAY = re.compile("\n[^\n\x00]")
# Stands for a line break and a block line's indentation while the fields are split apart;
# YAML cannot hold it as it is, so an entry that has it is for PyYAML.
_BLOCK_LINE = "\x00"
# What may not follow the mark of a block's first line: more indentation, or no text (a
# line of spaces, or a block of empty lines only, which YAML reads its own way).
_NOT_FIRST = frozenset({" ", "", _BLOCK_LINE})
_INT = re.compile(r"[1-9][0-9]{0,17}|0")
_FLOAT = re.compile(r"(?:[1-9][0-9]{0,17}|0)\.[0-9]{1,17}")
# Plain names the writer uses as they are (JSON styles, the stream's line ending).
_NAMES = frozenset(
    {"compact", "spaced", "indent", "crlf"}
    | {
        f"{layout}{suffix}"
        for layout in ("compact", "spaced", "indent")
        for suffix in ("+ascii", "+nl", "+ascii+nl")
    }
)
# A node id: "::" rules out every type a plain YAML scalar could be read as.
_NODE_ID = re.compile(r"[A-Za-z0-9_./-][^'\"#:\s]*::[^'\"#\s]*")
_BLOCKS = frozenset({"|", "|-", "|+"})


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
            if _STRAY.search(part) is not None:
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
        if _INT.fullmatch(raw):
            return int(raw)
        if _FLOAT.fullmatch(raw):
            return float(raw)
        return None
    if name == "cut_short":
        return True if raw == "true" else None
    if name == "test":
        return raw if _NODE_ID.fullmatch(raw) else None
    if name.endswith(("_json_style", "_sse_eol")):
        return raw if raw in _NAMES else None
    return None


# The fields an entry has before its request, each on one line, and those of its request.
_HEAD_NAMES = frozenset({"recorded_at", "ttl", "duration", "test", "cut_short"})
_REQUEST_NAMES = frozenset(
    {"request", "request_json", "request_json_style", "request_text", "request_base64"}
)
# The response's first line and its JSON body's, as the writer writes them.
_RESPONSE = "\n  response: |\n    "
_RESPONSE_JSON = "\n  response_json: |\n    "


def json_entry(text: str, start: int, end: int) -> tuple[dict[str, Any], str, Any] | None:
    """An entry with a JSON answer, read for its replay from ``text[start:end]``: its
    one-line fields (``recorded_at``, ``ttl``, ``duration``, ``test``, ``cut_short``), its
    response block and its answer's JSON value; or ``None``.

    Each line is checked as :func:`read_entry` checks it, but the request's blocks are not
    made (a replay does not use them), and the JSON is read where it is in the file: each of
    its lines indented four spaces, which JSON reads as whitespace (a JSON string holds no
    line break). An entry whose response is anything but a status and headers block and a
    compact JSON body (stored indented) is declined, as is any line not in the writer's layout.
    """
    at = text.find(_RESPONSE, start, end)
    if at < 0:
        return None
    fields = _head_fields(text[start:at])
    if fields is None:
        return None
    body = text.find(_RESPONSE_JSON, at, end)
    if body < 0:
        return None
    lines = text[at + len(_RESPONSE) : body + 1]
    # Every line of the block indented as its first, and no further (YAML would keep the
    # spaces past the block's four); no empty line.
    if lines.count("\n") != lines.count("\n    ") + 1:
        return None
    head = lines.replace("\n    ", "\n")
    if "\n " in head or head[:1] == " " or _BLOCK_LINE in head or _breaks_line(head):
        return None
    first = body + len(_RESPONSE_JSON)
    if text[first : first + 1] not in ("{", "["):
        return None
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
    if text.find("\r", first, stop) >= 0 or (
        not text.isascii() and _yaml_breaks().search(text, first, stop) is not None
    ):
        return None
    return fields, head, value


def _breaks_line(text: str) -> bool:
    """Whether ``text`` holds a line break YAML knows and Python's lines do not."""
    return ("\r" in text) if text.isascii() else _yaml_breaks().search(text) is not None


def _head_fields(part: str) -> dict[str, Any] | None:
    """The one-line fields of an entry's text before its response, checking its request's
    fields without making their text."""
    if _breaks_line(part) or _BLOCK_LINE in part:
        return None
    fields = part.replace("\n    ", _BLOCK_LINE).split("\n  ")
    if "\n" in fields[0] or _BLOCK_LINE in fields[0]:
        return None  # (the key line itself was read by the index)
    data: dict[str, Any] = {}
    seen: set[str] = set()
    for field in fields[1:]:
        name, sep, raw = field.partition(": ")
        if not sep or "\n" in field or name in seen:
            return None  # an empty line, a line outside the layout, or a field twice
        seen.add(name)
        if name in _REQUEST_NAMES:
            # A block, with text on its first line, indented as the layout's blocks are.
            header, mark, lines = raw.partition(_BLOCK_LINE)
            if not mark or header not in _BLOCKS or lines[:1] in _NOT_FIRST:
                return None  # (a style or base64 on its line: the longer way)
        elif name in _HEAD_NAMES:
            value = _scalar(name, raw)
            if value is None:
                return None
            data[name] = value
        else:
            return None
    if "request" not in seen or "recorded_at" not in data or "duration" not in data:
        return None  # (the longer way names what is missing)
    return data
