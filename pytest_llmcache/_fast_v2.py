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

# A field's line, found from the line break before it: "  name:" and its one-line value.
_FIELD = re.compile(r"\n  ([a-z_]+):(?: ([^\n]*))?(?=\n)")
# In a block, a line that is neither empty nor indented four spaces; a line of spaces only.
_BAD_LINE = re.compile(r"\n(?!    |\n|\Z)")
_SPACES_LINE = re.compile(r"\n +(?:\n|\Z)")
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
# YAML breaks lines at these too; our writer quotes them with escapes.
_YAML_BREAKS = re.compile("[\r\x85\u2028\u2029\ufeff]")


def read_entry(text: str) -> dict[str, Any] | None:
    """The fields of one entry (``- key: ...`` and the lines after it), or ``None``."""
    if ("\r" in text) if text.isascii() else _YAML_BREAKS.search(text) is not None:
        return None
    if not text.startswith("- key: "):
        return None
    # Every line after the first is a field ("  name: value") or a block's content (indented
    # four spaces, or empty). One split at the fields' lines gives the first line, then the
    # name, the one-line value and what follows (a block's lines, each after a line break)
    # of each field in turn.
    parts = _FIELD.split(text[:-1] if text.endswith("\n") else text)
    key = parts[0][7:]
    if key[:1] == "'" and key[-1:] == "'":
        key = key[1:-1]
    if "\n" in key or not _KEY.fullmatch(key):
        return None  # something between the first line and the first field
    data: dict[str, Any] = {"key": key}
    for at in range(1, len(parts), 3):
        name, raw, lines = parts[at], parts[at + 1], parts[at + 2]
        if name in data:
            return None
        if raw in _BLOCKS:
            value = _block(lines, raw)
            if value is None:
                return None
            data[name] = value
        else:
            if lines:
                return None  # something between two fields that is no block content
            value = _scalar(name, raw or "")
            if value is None:
                return None
            data[name] = value
    return data


def _block(lines: str, header: str) -> str | None:
    """A literal block's text from its lines, each after a line break, indented four spaces
    or empty."""
    if _BAD_LINE.search(lines) or (
        (" \n" in lines or lines.endswith(" ")) and _SPACES_LINE.search(lines)
    ):
        return None  # a line of fewer spaces, or of spaces only: let YAML decide
    # YAML finds a block's indentation from its first non-empty line: more than four spaces
    # there would be read differently (our writer then adds an indentation indicator).
    stripped = lines.lstrip("\n")
    if not stripped or stripped.startswith("     "):
        return None
    body = lines.replace("\n    ", "\n")[1:] + "\n"
    kept = body.rstrip("\n")
    if header == "|":
        return kept + "\n"
    if header == "|-":
        return kept
    return kept + "\n" * (len(body) - len(kept))


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
