"""Cassette format version 1: JSON bodies and stream events as YAML structures.

Still read, so recordings made before version 2 keep replaying; ``record`` and ``auto``
write version 2, and ``llm-cache upgrade`` rewrites a file in it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _body
from ._entry import CassetteError, Entry

__all__ = ["VERSION", "from_data"]

VERSION = 1

_REQUIRED = ("key", "recorded_at", "request", "response")


def from_data(data: dict[str, Any], path: Path) -> list[Entry]:
    """Check the entries of a parsed version 1 file and build them."""
    entries = data.get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CassetteError(f"{path}: 'entries' must be a list")
    built = []
    for number, item in enumerate(entries, 1):
        where = f"{path}: entry {number}"
        if not isinstance(item, dict):
            raise CassetteError(f"{where} is not a mapping")
        missing = [name for name in _REQUIRED if name not in item]
        if missing:
            raise CassetteError(f"{where} lacks {', '.join(missing)} (truncated or hand-edited?)")
        response = item["response"]
        status = response.get("status") if isinstance(response, dict) else None
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise CassetteError(
                f"{where}: response needs a three-digit integer 'status', got {status!r}"
            )
        headers = response.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise CassetteError(f"{where}: response headers must be a mapping of name: value")
        body = response.get("body")
        problem = None if body is None else _body.body_problem(body)
        if problem is not None:
            # Found now, with the file's name, rather than as a crash in the middle of a replay.
            raise CassetteError(f"{where}: response body {problem}")
        if not isinstance(item["request"], dict):
            raise CassetteError(f"{where}: request must be a mapping")
        ttl = item.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
            raise CassetteError(f"{where}: ttl must be a number of seconds, got {ttl!r}")
        try:
            entry = Entry.from_data(item)
        except (TypeError, ValueError) as exc:
            raise CassetteError(f"{where}: {exc}") from None
        try:
            entry.recorded_datetime()
        except ValueError:
            raise CassetteError(
                f"{where}: recorded_at {entry.recorded_at!r} is not an ISO 8601 time"
            ) from None
        built.append(entry)
    return built
