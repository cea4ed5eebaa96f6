"""``llm-cache check``: a committed cassette parses, has our version, and holds no secret.

Each problem is reported as ``FILE:LINE: what``, the line found by searching the file's text
for the offending field or value, so an editor or CI annotation jumps straight to it. No
problem line shows a secret: a key-shaped value appears masked, a credential by its name only.
"""

from __future__ import annotations

import configparser
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from . import _body
from ._cassette import MAX_SIZE, CassetteError, Entry, check_entry, parse
from ._secrets import (
    REDACTED,
    allowed_by,
    is_secret_header,
    is_secret_param,
    is_secret_request_header,
    key_shapes,
    mask,
    mask_secrets,
    unredacted_fields,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

__all__ = ["VCRPY_PROBLEM", "CheckResult", "check_file", "ini_allow_secrets", "is_vcrpy_cassette"]

ALLOW_OPTION = "llm_cache_allow_secrets"

VCRPY_PROBLEM = (
    "a vcrpy / pytest-recording cassette, not a pytest-llmcache one; "
    "convert it with `llm-cache import-vcr`"
)

_LINE_IN_MESSAGE = re.compile(r"^:(\d+):\s*")
_ENTRY_NUMBER = re.compile(r"\bentry (\d+)\b")
_VCRPY_TOP = re.compile(r'^(?:interactions:|\s*"interactions":)', re.M)


def is_vcrpy_cassette(text: str) -> bool:
    """Whether the text is a vcrpy cassette (which has ``version: 1`` too, at the bottom)."""
    return _VCRPY_TOP.search(text) is not None


@dataclass
class CheckResult:
    """What checking one file found."""

    entries: int = 0
    problems: list[str] = field(default_factory=list)


def check_file(path: Path, allow_secrets: Sequence[str] = ()) -> CheckResult:
    """Parse ``path`` and scan every entry; each problem is a ``FILE:LINE: what`` line.

    ``allow_secrets``: values or ``*`` patterns of key-shaped strings that are not keys, on
    top of those each entry lists as its own.
    """
    result = _check(path, allow_secrets)
    result.problems = [mask_secrets(problem) for problem in result.problems]
    return result


def _check(path: Path, allow_secrets: Sequence[str]) -> CheckResult:
    result = CheckResult()
    try:
        # Sized first: a hostile file (huge, or a device) is refused by parse() unread.
        if not path.is_file() or path.stat().st_size > MAX_SIZE:
            parse(path)
        text = path.read_text("utf-8")
    except CassetteError as exc:
        result.problems.append(_schema_problem(path, "", str(exc)))
        return result
    except (OSError, UnicodeDecodeError) as exc:
        result.problems.append(f"{path}:1: cannot read cassette: {exc}")
        return result
    if is_vcrpy_cassette(text):
        result.problems.append(f"{path}:1: {VCRPY_PROBLEM}")
        return result
    try:
        # Each entry of a version 2 file is read on its own below: one damaged entry is
        # reported, and the others are checked all the same.
        entries = parse(path, lazy=True)
    except CassetteError as exc:
        result.problems.append(_schema_problem(path, text, str(exc)))
        return result
    result.entries = len(entries)
    starts = _entry_offsets(text)
    for number, entry in enumerate(entries, 1):
        start = starts[number - 1] if number <= len(starts) else 0
        try:
            check_entry(entry)
            allowed = (*entry.allow_secrets, *allow_secrets)
            found = list(_secrets_in(entry, allowed))
        except CassetteError as exc:
            result.problems.append(_schema_problem(path, text, str(exc)))
            continue
        for needle, problem in found:
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


def _secrets_in(
    entry: Entry, allowed: Sequence[str]
) -> Iterator[tuple[str | re.Pattern[str], str]]:
    """Each secret in the entry, with the text (or pattern) that finds its line."""
    for section, is_secret in (
        ("request", is_secret_request_header),
        ("response", is_secret_header),
    ):
        headers = getattr(entry, section).get("headers") or {}
        if not isinstance(headers, dict):
            continue
        for name, value in headers.items():
            if is_secret(str(name).lower()) and value != REDACTED:
                yield (
                    re.compile(rf"^\s+{re.escape(str(name))}:", re.M),
                    f"{section} header '{name}' must not be committed "
                    "(it carries a credential, a cookie or an account id)",
                )
    url = str(entry.request.get("url", ""))
    try:
        split = urlsplit(url)
    except ValueError:
        split = urlsplit("")
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        if is_secret_param(name) and value not in ("", REDACTED):
            yield url, f"request URL carries the secret query parameter '{name}'"
    if "@" in split.netloc:
        yield url, "request URL carries credentials (user:password@)"
    yield from _body_fields(entry)
    data = entry.to_data()
    # The allow-list is the one place a listed example may be written as it is.
    data.pop("allow_secrets", None)
    for where, value in key_shapes(data):
        if allowed_by(value, allowed) is None:
            yield value, f"value shaped like an API key ({mask(value)}) at {where}"


def _body_fields(entry: Entry) -> Iterator[tuple[str | re.Pattern[str], str]]:
    """Credential-named fields of the stored request body that hold a value."""
    body = entry.request.get("body")
    headers = entry.request.get("headers")
    content_type = ""
    if isinstance(headers, dict):
        content_type = str(headers.get("content-type", ""))
    try:
        raw = _body.decode_body(body) if isinstance(body, dict) else b""
    except (KeyError, TypeError, ValueError):
        return  # the schema check reports a broken body
    for where in unredacted_fields(raw, content_type):
        name = re.split(r"[.\[]", where)[-1]
        yield (
            re.compile(rf"\b{re.escape(name)}\b"),
            f"request body field '{where}' must not be committed "
            f"(a credential: store it as {REDACTED})",
        )


def ini_allow_secrets(start: Path) -> tuple[str, ...]:
    """``llm_cache_allow_secrets`` from the pytest configuration that governs ``start``.

    The file is found as pytest finds it: in ``start`` (a folder, or a file's folder) and
    then each parent, the first of ``pytest.ini``, ``.pytest.ini``, ``pyproject.toml`` with
    ``[tool.pytest.ini_options]``, ``tox.ini`` with ``[pytest]`` or ``setup.cfg`` with
    ``[tool:pytest]``.
    """
    folder = start.resolve()
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        found = _config_in(candidate)
        if found is not None:
            return found
    return ()


def _config_in(folder: Path) -> tuple[str, ...] | None:
    """The option's values if ``folder`` holds pytest's configuration, else ``None``."""
    for name in ("pytest.ini", ".pytest.ini"):
        path = folder / name
        if path.is_file():
            # pytest.ini is the configuration even without a [pytest] section.
            return _ini_values(path, "pytest") or ()
    path = folder / "pyproject.toml"
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            data = {}
        options = data.get("tool", {}).get("pytest", {}).get("ini_options")
        if isinstance(options, dict):
            return _values(options.get(ALLOW_OPTION))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = folder / name
        if path.is_file():
            values = _ini_values(path, section)
            if values is not None:
                return values
    return None


def _ini_values(path: Path, section: str) -> tuple[str, ...] | None:
    parser = configparser.RawConfigParser(inline_comment_prefixes=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    if not parser.has_section(section):
        return None
    return _values(parser.get(section, ALLOW_OPTION, fallback=None))


def _values(raw: object) -> tuple[str, ...]:
    """A linelist option: one value a line in an ini file, a list (or a string) in TOML."""
    items = raw.split() if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        return ()
    return tuple(str(item).strip() for item in items if str(item).strip())


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
