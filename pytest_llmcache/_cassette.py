"""The cassette file: entries, their YAML form, validation and atomic writes (SPEC §2)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _body, _yaml
from ._exchange import Headers, Response
from ._lock import LockError, cassette_lock

__all__ = ["CASSETTE_VERSION", "Cassette", "CassetteError", "Change", "Entry"]

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
        """Whether two entries hold the same call and answer (timestamps, ids and owner aside)."""
        return (self.key, self.cut_short, self.request, _stable(self.response)) == (
            other.key,
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


@dataclass
class Change:
    """What one test did to a cassette in this run: the slots it recorded."""

    test: str
    """The node id of the test."""
    slots: dict[tuple[str, int], Entry]
    """``(key, occurrence) -> entry``: the occurrence is the call's place among the test's
    identical requests, counted when the call was made, whatever order answers came in."""
    replace_own: bool = False
    """``record``: the test's older entries that it did not record again are removed."""
    own_file: bool = False
    """The cassette is the test's alone: entries that name no test are its own too."""


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
        self.dirty = False
        self._set(entries or [])

    def _set(self, entries: list[Entry]) -> None:
        self.entries = list(entries)
        self._index = {}
        for entry in self.entries:
            self._index.setdefault(entry.key, []).append(entry)

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
        """Store ``entry`` as the ``occurrence``-th response to its key; return what it replaced.

        An occurrence past the last one is stored after it (occurrences have no gaps).
        """
        found = self._index.setdefault(entry.key, [])
        self.dirty = True
        if occurrence < len(found):
            old = found[occurrence]
            found[occurrence] = entry
            self.entries[self.entries.index(old)] = entry
            return old
        self.entries.append(entry)
        found.append(entry)
        return None

    def apply(self, change: Change) -> None:
        """Put one test's recorded slots in place, in memory.

        A slot that exists is replaced where it stands (re-recording the same traffic moves
        nothing); a new one goes after the last entry of its key, in occurrence order. With
        ``replace_own``, the test's own older entries that it did not record again go; the
        entries of every other test stay as they are.
        """
        positions: dict[str, list[int]] = {}
        for position, entry in enumerate(self.entries):
            positions.setdefault(entry.key, []).append(position)
        replaced: dict[int, Entry] = {}
        after: dict[int, list[Entry]] = {}
        for (key, occurrence), entry in sorted(change.slots.items(), key=lambda s: s[0][1]):
            found = positions.get(key, [])
            if occurrence < len(found):
                replaced[found[occurrence]] = entry
            else:
                after.setdefault(found[-1] if found else -1, []).append(entry)

        def stale(entry: Entry) -> bool:
            if not change.replace_own:
                return False
            return entry.test == change.test or (entry.test is None and change.own_file)

        result: list[Entry] = []
        for position, entry in enumerate(self.entries):
            if position in replaced:
                result.append(replaced[position])
            elif not stale(entry):
                result.append(entry)
            result += after.get(position, ())
        result += after.get(-1, ())
        if result != self.entries:
            self._set(result)
            self.dirty = True

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
        with _locked(self.path):
            return self._write()

    def commit(self, change: Change) -> bool:
        """Apply one test's change to the file as it is on disk now, and write it.

        Other processes (xdist workers sharing the cassette) may have written the file since
        it was read here: under the file's lock it is read again first, so nobody's entry is
        lost. Returns whether the file was written.
        """
        if not change.slots:
            return False
        with _locked(self.path):
            if _stamp_of(self.path) != self._stamp:
                fresh = Cassette.load(self.path, self._parse_cache)
                self._set(fresh.entries)
                self._stamp = fresh._stamp
            self.apply(change)
            return self._write() if self.dirty else False

    def save_unlocked(self) -> bool:
        """:meth:`save` for a caller that already holds the cassette's lock."""
        return self._write() if self.dirty else False

    def _write(self) -> bool:
        self.dirty = False
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        with cassette_lock(path):
            yield
    except LockError as exc:
        raise CassetteError(f"{path}: cannot lock cassette: {exc}") from None


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
