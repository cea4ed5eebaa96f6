"""The cassette file: entries, their YAML form, validation and atomic writes (SPEC §2)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _body, _yaml
from ._exchange import Headers, Response
from ._lock import cassette_lock

__all__ = ["CASSETTE_VERSION", "Cassette", "CassetteError", "Entry"]

CASSETTE_VERSION = 1

_REQUIRED = ("key", "recorded_at", "request", "response")

# Response headers that differ on every call even when the answer does not; re-recording an
# identical answer keeps the stored entry, so the file changes by no byte.
_PER_CALL_HEADERS = frozenset(
    {
        "date",
        "age",
        "expires",
        "x-request-id",
        "request-id",
        "cf-ray",
        "server-timing",
        "openai-processing-ms",
        "x-envoy-upstream-service-time",
    }
)
_PER_CALL_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")


def _stable(response: dict[str, Any]) -> dict[str, Any]:
    headers = {
        k: v
        for k, v in (response.get("headers") or {}).items()
        if k not in _PER_CALL_HEADERS and not k.startswith(_PER_CALL_PREFIXES)
    }
    return {**response, "headers": headers}


class CassetteError(Exception):
    """A cassette cannot be read or written; the message names the file."""


@dataclass(slots=True, eq=False)
class Entry:
    """One recorded call: the request it answers and the response to replay."""

    key: str
    recorded_at: str
    ttl: float | None
    duration: float
    request: dict[str, Any]
    response: dict[str, Any]
    test: str | None = None
    """The node id of the test that recorded the entry (absent in older files)."""
    cut_short: bool = False
    """The caller left the stream early: the body holds only the chunks it read."""
    allow_secrets: tuple[str, ...] = ()
    """The allow-list patterns its key-shaped values matched when it was recorded."""
    _replay: Response | None = field(default=None, repr=False)

    def recorded_datetime(self) -> datetime:
        """When the call was recorded, in UTC."""
        stamp = datetime.fromisoformat(self.recorded_at.replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)

    def is_expired(self, now: datetime) -> bool:
        """Whether the entry is older than its TTL (never, without one)."""
        if self.ttl is None:
            return False
        return (now - self.recorded_datetime()).total_seconds() > self.ttl

    def to_response(self) -> Response:
        """The stored response as chunks and headers, decoded once and kept."""
        if self._replay is None:
            stored = self.response
            body = stored.get("body") or {}
            if "chunks" in body:
                chunks = tuple(_body.decode_chunks(body["chunks"]))
            else:
                chunks = (_body.decode_body(body),)
            headers: Headers = tuple(
                (str(k), str(v)) for k, v in (stored.get("headers") or {}).items()
            )
            self._replay = Response(int(stored["status"]), headers, chunks)
        return self._replay

    def same_exchange(self, other: Entry) -> bool:
        """Whether two entries hold the same call and answer (timestamps and ids aside)."""
        return (self.key, self.test, self.cut_short, self.request, _stable(self.response)) == (
            other.key,
            other.test,
            other.cut_short,
            other.request,
            _stable(other.response),
        )

    def to_data(self) -> dict[str, Any]:
        """The YAML-ready mapping, in the field order the file shows."""
        data: dict[str, Any] = {"key": self.key, "recorded_at": self.recorded_at}
        if self.ttl is not None:
            data["ttl"] = int(self.ttl) if float(self.ttl).is_integer() else self.ttl
        data["duration"] = self.duration
        if self.test is not None:
            data["test"] = self.test
        if self.cut_short:
            data["cut_short"] = True
        if self.allow_secrets:
            data["allow_secrets"] = list(self.allow_secrets)
        data["request"] = self.request
        data["response"] = self.response
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Entry:
        """An entry from its mapping (already validated)."""
        recorded = data["recorded_at"]
        if isinstance(recorded, datetime):
            recorded = recorded.isoformat()
        ttl = data.get("ttl")
        test = data.get("test")
        return cls(
            key=str(data["key"]),
            recorded_at=str(recorded),
            ttl=float(ttl) if ttl is not None else None,
            duration=float(data.get("duration") or 0.0),
            request=data["request"],
            response=data["response"],
            test=None if test is None else str(test),
            cut_short=data.get("cut_short") is True,
            allow_secrets=tuple(str(p) for p in data.get("allow_secrets") or ()),
        )


class Cassette:
    """The entries of one file, indexed by key; each key holds its responses in call order."""

    def __init__(
        self, path: Path, entries: list[Entry] | None = None, *, parse_cache: Path | None = None
    ) -> None:
        self.path = path
        self._parse_cache = parse_cache
        self._stamp: tuple[int, ...] | None = None
        """Inode, size and mtime of the file when last read or written here (None: never)."""
        self.entries: list[Entry] = []
        self._index: dict[str, list[Entry]] = {}
        self._changes: list[tuple[int, Entry]] = []
        self.dirty = False
        for entry in entries or []:
            self._append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def responses(self, key: str) -> list[Entry]:
        """Every entry recorded for ``key``, in call order."""
        return self._index.get(key, [])

    def get(self, key: str, occurrence: int) -> Entry | None:
        """The ``occurrence``-th response to ``key``, or ``None`` if it was never recorded."""
        found = self._index.get(key)
        if found and occurrence < len(found):
            return found[occurrence]
        return None

    def put(self, occurrence: int, entry: Entry) -> Entry | None:
        """Store ``entry`` as the ``occurrence``-th response to its key; return what it replaced."""
        found = self._index.setdefault(entry.key, [])
        self.dirty = True
        self._changes.append((occurrence, entry))
        if occurrence < len(found):
            old = found[occurrence]
            found[occurrence] = entry
            self.entries[self.entries.index(old)] = entry
            return old
        self._append(entry)
        return None

    def _append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self._index.setdefault(entry.key, []).append(entry)

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, parse_cache: Path | None = None) -> Cassette:
        """Read ``path`` (an absent file is an empty cassette).

        ``parse_cache`` is a folder where a JSON copy of each parsed file is kept, keyed by
        the file's size and modification time, so an unchanged cassette is not parsed as
        YAML again on the next run.
        """
        stamp = _stamp_of(path)
        if stamp == _MISSING:
            cassette = cls(path, parse_cache=parse_cache)
            cassette._stamp = stamp
            return cassette
        cached = _cache_file(parse_cache, path)
        entries: list[Entry] | None = None
        if cached is not None:
            # A stale, foreign or damaged cache is only a slower load, never an error.
            with contextlib.suppress(OSError, ValueError, LookupError, TypeError, AttributeError):
                saved = json.loads(cached.read_text("utf-8"))
                if saved.get("stamp") == list(stamp):
                    entries = [Entry.from_data(e) for e in saved["entries"]]
        if entries is None:
            entries = parse(path)
            _save_parsed(cached, stamp, entries)
        cassette = cls(path, entries, parse_cache=parse_cache)
        cassette._stamp = stamp
        return cassette

    # -- writing ---------------------------------------------------------------------------

    def render(self) -> str:
        """The file's text: the same entries always give the same bytes."""
        return _yaml.dump(
            {"version": CASSETTE_VERSION, "entries": [e.to_data() for e in self.entries]}
        )

    def save(self) -> bool:
        """Write the file atomically if its content changed; return whether it was written.

        The text goes to a temporary file in the same folder, then replaces the cassette
        in one rename: a reader or an interrupted run sees the old file or the new one.
        """
        if not self.dirty:
            return False
        with cassette_lock(self.path):
            return self._write()

    def save_merged(self, *, fresh: Callable[[], bool], parse_cache: Path | None = None) -> bool:
        """Write this process's new entries into the file as it is on disk now.

        Other processes (xdist workers sharing the cassette) may have written it since it
        was read: under the file's lock, the file is read again and only the entries put
        here since the last save are applied to it, so nobody's entry is lost. ``fresh`` is
        asked, under the lock, whether to start from an empty file instead (the first write
        of a ``record`` run).
        """
        if not self.dirty:
            return False
        with cassette_lock(self.path):
            if fresh():
                base: list[Entry] = []
            elif _stamp_of(self.path) == self._stamp:
                # Nobody wrote the file since this process read it: what is in memory is
                # already the merged result.
                return self._write()
            else:
                base = Cassette.load(self.path, parse_cache).entries
            merged = Cassette(self.path, base)
            for occurrence, entry in self._changes:
                merged.put(occurrence, entry)
            self.entries, self._index = merged.entries, merged._index
            return self._write()

    def save_unlocked(self) -> bool:
        """:meth:`save` for a caller that already holds the cassette's lock."""
        return self._write() if self.dirty else False

    def _write(self) -> bool:
        self.dirty = False
        self._changes.clear()
        text = self.render()
        try:
            if self.path.read_text("utf-8") == text:
                return False
        except (OSError, UnicodeDecodeError):
            pass
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.path, text)
        except OSError as exc:
            raise CassetteError(
                f"{self.path}: cannot write cassette: {exc.strerror or exc}"
            ) from None
        self._stamp = _stamp_of(self.path)
        # The next run reads what was just written without parsing YAML.
        _save_parsed(_cache_file(self._parse_cache, self.path), self._stamp, self.entries)
        return True


def parse(path: Path) -> list[Entry]:
    """Read and validate a cassette file; every problem is a :class:`CassetteError`."""
    try:
        # Sized before reading: a cassette may come from an untrusted pull request, and
        # neither a huge file nor a symlink to a device may be read into memory.
        size = path.stat().st_size
        if not path.is_file():
            raise CassetteError(f"{path}: cannot read cassette: not a regular file")
        if size > _yaml.MAX_SIZE:
            raise CassetteError(
                f"{path}: cassette is {size:,} bytes, over the limit of {_yaml.MAX_SIZE:,} "
                f"bytes ({_yaml.MAX_SIZE >> 20} MiB); restore it from git or re-record it"
            )
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read cassette: {exc}") from None
    try:
        data = _yaml.load(text)
    except _yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f":{mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise CassetteError(
            f"{path}{where}: not a valid cassette (YAML error: {problem}); the file may be "
            "truncated or hand-edited: restore it from git or re-record it"
        ) from None
    return validate(data, path)


def validate(data: object, path: Path) -> list[Entry]:
    """Check the structure of a parsed cassette and build its entries."""
    if isinstance(data, dict) and "interactions" in data:
        raise CassetteError(
            f"{path}: a vcrpy / pytest-recording cassette, not a pytest-llmcache one; convert "
            f"it (llm-cache import-vcr {path} DEST) or move it away before recording"
        )
    if isinstance(data, dict) and set(data) - {"version", "entries"}:
        unknown = ", ".join(sorted(map(str, set(data) - {"version", "entries"})))
        raise CassetteError(
            f"{path}: unknown top-level field(s) {unknown}; a cassette holds only "
            "'version' and 'entries'"
        )
    if not isinstance(data, dict) or "version" not in data:
        raise CassetteError(
            f"{path}: not a pytest-llmcache cassette (no 'version' at the top); "
            "restore it from git or re-record it"
        )
    version = data["version"]
    if version != CASSETTE_VERSION:
        raise CassetteError(
            f"{path}: cassette version {version!r} is not supported; this pytest-llmcache "
            f"reads version {CASSETTE_VERSION} (upgrade pytest-llmcache, or re-record the file)"
        )
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


_MISSING = (-1, -1, -1)


def _stamp_of(path: Path) -> tuple[int, ...]:
    """Inode, size and modification time of ``path``, or ``_MISSING``.

    Every write replaces the file with a new one, so the inode tells two writes apart even
    within one tick of a coarse modification time.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read cassette: {exc.strerror}") from None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _save_parsed(cached: Path | None, stamp: tuple[int, ...], entries: list[Entry]) -> None:
    """Keep a JSON copy of parsed entries in the parse cache (best effort)."""
    if cached is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = {"stamp": list(stamp), "entries": [e.to_data() for e in entries]}
            _atomic_write(cached, json.dumps(data, separators=(",", ":")))


def _cache_file(folder: Path | None, path: Path) -> Path | None:
    if folder is None:
        return None
    name = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()
    return folder / f"{name}.json"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private; a cassette is as readable as the file it replaces.
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
