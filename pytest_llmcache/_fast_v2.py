"""A reader for exactly the entries our version 2 writer produces, several times faster than
PyYAML; anything else it declines, and PyYAML reads it.

An entry the writer produces is a handful of ``name: value`` lines, where a value is a
literal block (``|``, ``|-``, ``|+``), a single-quoted string on one line, or a plain number,
key or name. This reader takes those and gives the same mapping PyYAML gives; at the first
line it is not sure of (double quotes, flow style, an anchor, a tag, a list, a plain value
YAML could read as something else), it returns ``None``. A differential test checks it
against PyYAML on every kind of entry the recorder writes.

Set ``LLM_CACHE_PURE_YAML=1`` to read with PyYAML alone.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["ENABLED", "read_entry"]

ENABLED = os.environ.get("LLM_CACHE_PURE_YAML", "") in ("", "0")

_FIELD = re.compile(r"  ([a-z_]+): ?(.*)")
_KEY = re.compile(r"[0-9a-f]{1,64}")
_INT = re.compile(r"[1-9][0-9]{0,17}|0")
_FLOAT = re.compile(r"(?:[1-9][0-9]{0,17}|0)\.[0-9]{1,17}")
# Plain names the writer uses as they are (JSON styles, the stream's line ending).
_NAME = re.compile(r"[a-z]+(?:\+[a-z]+)*")
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
_YAML_BREAKS = re.compile("[\r\x85\u2028\u2029\ufeff]")


def read_entry(text: str) -> dict[str, Any] | None:
    """The fields of one entry (``- key: ...`` and the lines after it), or ``None``."""
    if _YAML_BREAKS.search(text):
        return None  # YAML breaks lines at these too; our writer quotes them with escapes
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    first = lines[0]
    if not first.startswith("- key: "):
        return None
    key = first[7:]
    if key[:1] == "'" and key[-1:] == "'":
        key = key[1:-1]
    if not _KEY.fullmatch(key):
        return None
    data: dict[str, Any] = {"key": key}
    index = 1
    count = len(lines)
    while index < count:
        match = _FIELD.fullmatch(lines[index])
        if match is None:
            return None
        name, raw = match.groups()
        if name in data:
            return None
        index += 1
        if raw in _BLOCKS:
            value, index = _block(lines, index, raw)
            if value is None:
                return None
            data[name] = value
            continue
        value = _scalar(name, raw)
        if value is None:
            return None
        data[name] = value
    return data


def _block(lines: list[str], index: int, header: str) -> tuple[str | None, int]:
    """A literal block's text, read from ``index``; and the index of the line after it."""
    content: list[str] = []
    count = len(lines)
    while index < count:
        line = lines[index]
        if line.startswith("    "):
            content.append(line[4:])
        elif line == "":
            content.append("")
        elif line.strip() == "":
            return None, index  # spaces only: let YAML decide what they mean
        else:
            break
        index += 1
    # YAML finds a block's indentation from its first non-empty line: more than four spaces
    # there would be read differently (our writer then adds an indentation indicator).
    first = next((line for line in content if line), None)
    if first is None or first.startswith(" "):
        return None, index
    trailing = 0
    while content and content[-1] == "":
        content.pop()
        trailing += 1
    body = "\n".join(content)
    if header == "|":
        return body + "\n", index
    if header == "|-":
        return body, index
    return body + "\n" + "\n" * trailing, index


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
        return raw if raw in _NAMES and _NAME.fullmatch(raw) else None
    return None
