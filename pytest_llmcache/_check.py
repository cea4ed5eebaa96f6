"""``llm-cache check``: a committed cassette parses, has our version, and holds no secret.

Each problem is reported as ``FILE:LINE: what``, the line found by searching the file's text
for the offending field or value, so an editor or CI annotation jumps straight to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ._cassette import CassetteError, Entry, parse
from ._secrets import REDACTED, SECRET_QUERY_PARAMS, find_key_shape, is_secret_header

__all__ = ["VCRPY_PROBLEM", "CheckResult", "check_file", "is_vcrpy_cassette"]

VCRPY_PROBLEM = (
    "a vcrpy / pytest-recording cassette, not a pytest-llmcache one; "
    "convert it with `llm-cache import-vcr`"
)

_LINE_IN_MESSAGE = re.compile(r"^:(\d+):\s*")
_ENTRY_NUMBER = re.compile(r"\bentry (\d+)\b")
_KEY_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_VCRPY_TOP = re.compile(r'^(?:interactions:|\s*"interactions":)', re.M)


def is_vcrpy_cassette(text: str) -> bool:
    """Whether the text is a vcrpy cassette (which has ``version: 1`` too, at the bottom)."""
    return _VCRPY_TOP.search(text) is not None


@dataclass
class CheckResult:
    """What checking one file found."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)


def check_file(path: Path) -> CheckResult:
    """Parse ``path`` and scan every entry; each problem is a ``FILE:LINE: what`` line."""
    result = CheckResult()
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"{path}:1: cannot read cassette: {exc}")
        return result
    if is_vcrpy_cassette(text):
        result.problems.append(f"{path}:1: {VCRPY_PROBLEM}")
        return result
    try:
        entries = parse(path)
    except CassetteError as exc:
        result.problems.append(_schema_problem(path, text, str(exc)))
        return result
    result.entries = len(entries)
    starts = _entry_offsets(text)
    for number, entry in enumerate(entries, 1):
        start = starts[number - 1] if number <= len(starts) else 0
        for needle, problem in _secrets_in(entry):
            line = _line_of(text, needle, start)
            result.problems.append(f"{path}:{line}: entry {number}: {problem}")
    return result


def _schema_problem(path: Path, text: str, message: str) -> str:
    """``message`` (which starts with the path) placed on the line it is about."""
    message = message.removeprefix(str(path))
    located = _LINE_IN_MESSAGE.match(message)
    if located:
        return f"{path}:{located.group(1)}: {message[located.end() :]}"
    message = message.lstrip(": ")
    line = 1
    entry = _ENTRY_NUMBER.search(message)
    starts = _entry_offsets(text)
    if entry and int(entry.group(1)) <= len(starts):
        line = text.count("\n", 0, starts[int(entry.group(1)) - 1]) + 1
    elif "version" in message:
        line = _line_of(text, re.compile(r"^version:", re.M), 0)
    return f"{path}:{line}: {message}"


def _secrets_in(entry: Entry) -> Iterator[tuple[str | re.Pattern[str], str]]:
    """Each secret in the entry, with the text (or pattern) that finds its line."""
    for section in ("request", "response"):
        headers = getattr(entry, section).get("headers") or {}
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            if is_secret_header(str(name).lower()) and value != REDACTED:
                yield (
                    re.compile(rf"^\s+{re.escape(str(name))}:", re.M),
                    f"{section} header '{name}' must not be committed "
                    "(it carries a credential, a cookie or an account id)",
                )
    url = str(entry.request.get("url", ""))
    split = urlsplit(url)
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        if name.lower() in SECRET_QUERY_PARAMS and value not in ("", REDACTED):
            yield url, f"request URL carries the secret query parameter '{name}'"
    if split.password:
        yield url, "request URL carries a password"
    for where, value in _strings(entry.to_data(), ""):
        if find_key_shape(value) is not None:
            token = _key_token(value)
            masked = token[:6] + "..." if token else "?"
            yield token or value, f"value shaped like an API key ({masked}) at {where}"


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path or ".", value
    elif isinstance(value, dict):
        for k, v in value.items():
            child = f"{path}.{k}" if path else str(k)
            yield from _strings(k, child)
            yield from _strings(v, child)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _key_token(value: str) -> str | None:
    # Every known key shape is made of these characters, so the key is one whole token.
    tokens: list[str] = _KEY_TOKEN.findall(value)
    for token in tokens:
        if find_key_shape(token) is not None:
            return token
    return None


def _entry_offsets(text: str) -> list[int]:
    """Where each entry of the ``entries:`` list starts in the text (block-style YAML)."""
    top = re.search(r"^entries:", text, re.M)
    if top is None:
        return []
    return [m.start() for m in re.compile(r"^- ", re.M).finditer(text, top.end())]


def _line_of(text: str, needle: str | re.Pattern[str], start: int) -> int:
    """The 1-based line of ``needle`` at or after ``start``, else anywhere, else ``start``'s."""
    for origin in (start, 0):
        if isinstance(needle, str):
            offset = text.find(needle, origin)
        else:
            match = needle.search(text, origin)
            offset = -1 if match is None else match.start()
        if offset >= 0:
            return text.count("\n", 0, offset) + 1
    return text.count("\n", 0, start) + 1
