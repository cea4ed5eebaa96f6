"""The store: cassettes on disk, indexed by key, written atomically under a lock (SPEC §2).

Reading dispatches on the file's version (:mod:`._format_v1`, :mod:`._format_v2`); writing
always uses the newest. A version 1 file read whole is kept as JSON in pytest's cache folder
(the parse cache), so it is parsed as YAML once; version 2 needs no such copy, as its
entries are read one at a time, when used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from . import _format_v2
from ._entry import CassetteError, Entry
from ._lock import LockError, cassette_lock

__all__ = [
    "CASSETTE_VERSION",
    "Cassette",
    "CassetteError",
    "Change",
    "Entry",
    "check_entry",
    "looks_like_cassette",
    "parse",
    "validate",
]

MAX_SIZE = 64 * 1024 * 1024
"""Largest cassette read, in bytes: far past any recorded suite, short of exhausting memory."""

CASSETTE_VERSION = _format_v2.VERSION
"""The version ``record`` and ``auto`` write."""

_VERSION_1 = 1
"""Read by :mod:`._format_v1`, imported only for such a file."""
_VERSIONS = (_VERSION_1, _format_v2.VERSION)


class Change(NamedTuple):
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
        self, path: Path, entries: Sequence[Entry] | None = None, *, parse_cache: Path | None = None
    ) -> None:
        self.path = path
        self._parse_cache = parse_cache
        self._stamp: tuple[int, ...] | None = None
        """Inode, size and mtime of the file when last read or written here (None: never)."""
        self._entries: list[Entry] = []
        self._index: dict[str, list[Entry]] = {}
        self._lazy: _format_v2.Index | None = None
        """A file's entries as read for replay, each made when asked for (``None`` once
        :attr:`entries` is asked for)."""
        self.dirty = False
        self._set(entries or [])

    @property
    def entries(self) -> list[Entry]:
        """Every entry, in file order (a file read for replay makes all of them now)."""
        if self._lazy is not None:
            self._set(list(self._lazy))
        return self._entries

    @entries.setter
    def entries(self, entries: list[Entry]) -> None:
        self._set(entries)

    def _set(self, entries: Sequence[Entry]) -> None:
        self._index = {}
        if isinstance(entries, _format_v2.Index):
            self._lazy, self._entries = entries, []
            return
        self._lazy = None
        self._entries = list(entries)
        for entry in self._entries:
            self._index.setdefault(entry.key, []).append(entry)

    def __len__(self) -> int:
        return len(self._lazy) if self._lazy is not None else len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def keys(self) -> list[str]:
        """Each entry's key, in file order (no entry is made for it)."""
        if self._lazy is not None:
            return self._lazy.keys
        return [entry.key for entry in self._entries]

    def responses(self, key: str) -> list[Entry]:
        """Every entry recorded for ``key``, in call order."""
        lazy = self._lazy
        if lazy is not None:
            return [lazy[position] for position in lazy.positions(key)]
        return self._index.get(key, [])

    def get(self, key: str, occurrence: int) -> Entry | None:
        """The ``occurrence``-th response to ``key``, or ``None`` if it was never recorded."""
        lazy = self._lazy
        if lazy is not None:
            positions = lazy.positions(key)
            return lazy[positions[occurrence]] if occurrence < len(positions) else None
        found = self._index.get(key)
        if found and occurrence < len(found):
            return found[occurrence]
        return None

    def answer(
        self, key: str, occurrence: int, owner: str | None = None, *, repeat_last: bool = False
    ) -> tuple[Entry, int] | None:
        """The ``occurrence``-th response to ``key`` for a test, and its place among all of
        ``key``'s responses in the file (what the audit counts as used).

        With ``owner`` (a cassette several tests share), the responses that test recorded,
        if it recorded any: two tests asking the same thing each get their own answers back.
        Otherwise every response to ``key``, whoever recorded it. ``repeat_last``: past the
        last response, the last one again.
        """
        if owner is None:
            entry = self.get(key, occurrence)
            if entry is not None:
                return entry, occurrence
            if not repeat_last:
                return None
            entries = self.responses(key)
            return (entries[-1], len(entries) - 1) if entries else None
        entries = self.responses(key)
        own = [place for place, entry in enumerate(entries) if entry.test == owner]
        places = own or range(len(entries))
        if occurrence < len(places):
            place = places[occurrence]
        elif repeat_last and places:
            place = places[-1]
        else:
            return None
        return entries[place], place

    def places(self, entries: Collection[Entry]) -> list[tuple[str, int]]:
        """``(key, place among the key's responses)`` of each of ``entries`` in the file."""
        wanted = {id(entry) for entry in entries}
        seen: dict[str, int] = {}
        found = []
        for entry in self.entries:
            place = seen.get(entry.key, 0)
            seen[entry.key] = place + 1
            if id(entry) in wanted:
                found.append((entry.key, place))
        return found

    def put(self, occurrence: int, entry: Entry) -> Entry | None:
        """Store ``entry`` as the ``occurrence``-th response to its key; return what it replaced.

        An occurrence past the last one is stored after it (occurrences have no gaps).
        """
        entries = self.entries  # (every entry made first, and indexed)
        found = self._index.setdefault(entry.key, [])
        self.dirty = True
        if occurrence < len(found):
            old = found[occurrence]
            found[occurrence] = entry
            entries[entries.index(old)] = entry
            return old
        entries.append(entry)
        found.append(entry)
        return None

    def apply(self, change: Change) -> None:
        """Put one test's recorded slots in place, in memory.

        A slot that exists is replaced where it stands (re-recording the same traffic moves
        nothing); a new one goes after the last entry of its key, in occurrence order. In a
        cassette several tests share, a slot is the test's own: its ``occurrence``-th entry
        of the key among those it recorded. Another test's answer to the same request is
        never replaced by a different one (both are kept, each replayed to its own test);
        the same exchange, recorded again by another test, becomes that test's. With
        ``replace_own``, the test's own older entries that it did not record again go; the
        entries of every other test stay as they are.
        """
        everywhere: dict[str, list[int]] = {}
        positions: dict[str, list[int]] = {}
        for position, entry in enumerate(self.entries):
            everywhere.setdefault(entry.key, []).append(position)
            if change.own_file or entry.test == change.test:
                positions.setdefault(entry.key, []).append(position)
        replaced: dict[int, Entry] = {}
        after: dict[int, list[Entry]] = {}
        for (key, occurrence), entry in sorted(change.slots.items(), key=lambda s: s[0][1]):
            found = positions.get(key, [])
            every = everywhere.get(key, [])
            if occurrence < len(found):
                replaced[found[occurrence]] = entry
            elif (
                not found  # (the answers the test replays when it has none of its own)
                and occurrence < len(every)
                and self.entries[every[occurrence]].same_exchange(entry)
            ):
                replaced[every[occurrence]] = entry
            else:
                after.setdefault(every[-1] if every else -1, []).append(entry)

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
    def load(cls, path: Path, parse_cache: Path | None = None, *, lazy: bool = True) -> Cassette:
        """Read ``path`` (an absent file is an empty cassette).

        With ``lazy``, each entry of a version 2 file is read when first used; without, all
        are read and checked now, so a damaged file is found before anything else happens.

        ``parse_cache`` is a folder where a JSON copy of each parsed file is kept, keyed by
        the file's size and modification time, so an unchanged cassette is not parsed as
        YAML again on the next run.
        """
        found = _read_stamped(path)
        if found is None:
            cassette = cls(path, parse_cache=parse_cache)
            cassette._stamp = _MISSING
            return cassette
        text, stamp = found
        entries: Sequence[Entry] | None = None
        if text.startswith("version: 2\n"):
            entries = _format_v2.read(text, path)
            if not lazy:
                _check_all(entries)
        else:
            cached = _cache_file(parse_cache, path)
            if cached is not None:
                # A stale, foreign or damaged cache is only a slower load, never an error.
                with contextlib.suppress(
                    OSError, ValueError, LookupError, TypeError, AttributeError
                ):
                    saved = json.loads(cached.read_text("utf-8"))
                    if saved.get("stamp") == list(stamp):
                        entries = [Entry.from_data(e) for e in saved["entries"]]
            if entries is None:
                entries, _ = _read(path)
                _save_parsed(cached, stamp, entries)
        cassette = cls(path, entries if lazy else list(entries), parse_cache=parse_cache)
        cassette._stamp = stamp
        return cassette

    # -- writing ---------------------------------------------------------------------------

    def render(self) -> str:
        """The file's text, in the newest version: the same entries give the same bytes."""
        return _format_v2.render(self.entries)

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
        # (Checked in characters first: each is at most 4 bytes.)
        if len(text) > MAX_SIZE // 4 and len(data := text.encode("utf-8")) > MAX_SIZE:
            # Replay refuses a file this large: it is not written, and the file stays as it was.
            raise CassetteError(
                f"{self.path}: not written: it would be {len(data):,} bytes, over the limit "
                f"of {MAX_SIZE:,} bytes ({MAX_SIZE >> 20} MiB) that replay reads; record fewer "
                "or smaller calls into it (a test with a cassette of its own)"
            )
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
        return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        with cassette_lock(path):
            yield
    except LockError as exc:
        raise CassetteError(f"{path}: cannot lock cassette: {exc}") from None


def looks_like_cassette(head: bytes) -> bool:
    """Whether the first bytes of a YAML file have a cassette's top-level fields (after the
    byte order mark some editors put first, which YAML and replay read past)."""
    lines = head[:4096].removeprefix(b"\xef\xbb\xbf").splitlines()
    return any(line.startswith(b"version:") for line in lines) and any(
        line.startswith(b"entries:") for line in lines
    )


def read_text(path: Path) -> str:
    """A cassette's text; sized before reading, as a cassette may come from anyone."""
    found = _read_stamped(path)
    if found is None:
        raise CassetteError(f"{path}: cannot read cassette: no such file")
    return found[0]


def _read_stamped(path: Path) -> tuple[str, tuple[int, ...]] | None:
    """A cassette's text and the stamp of the file it was read from (``None``: no file).

    One open file, checked before it is read: neither a huge file nor a device may be read
    into memory, and opening a named pipe must not wait for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CassetteError(f"{path}: cannot read cassette: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CassetteError(f"{path}: cannot read cassette: not a regular file")
        if info.st_size > MAX_SIZE:
            raise CassetteError(
                f"{path}: cassette is {info.st_size:,} bytes, over the limit of "
                f"{MAX_SIZE:,} bytes ({MAX_SIZE >> 20} MiB); restore it from "
                "git or re-record it"
            )
        data = os.read(fd, info.st_size + 1)
        if len(data) > info.st_size:  # it grew since: read on, within the limit
            while chunk := os.read(fd, 1 << 20):
                data += chunk
                if len(data) > MAX_SIZE:
                    raise CassetteError(
                        f"{path}: cassette is over the limit of {MAX_SIZE:,} bytes "
                        f"({MAX_SIZE >> 20} MiB); restore it from git or re-record it"
                    )
        return data.decode("utf-8"), (info.st_ino, info.st_size, info.st_mtime_ns)
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read cassette: {exc}") from None
    finally:
        os.close(fd)


def parse(path: Path, *, lazy: bool = False) -> list[Entry]:
    """Read a cassette file; every problem is a :class:`CassetteError` naming the file.

    With ``lazy``, the entries of a version 2 file are checked when first used; without,
    every entry is read and checked now (what ``llm-cache check`` needs).
    """
    entries, _ = _read(path)
    if not lazy:
        _check_all(entries)
    return entries


def _check_all(entries: Sequence[Entry]) -> None:
    for entry in entries:
        check_entry(entry)


def check_entry(entry: Entry) -> None:
    """Read every part of ``entry`` now: its first problem is a :class:`CassetteError`."""
    entry.to_response()
    _ = entry.recorded_at, entry.request, entry.response


def _read(path: Path) -> tuple[list[Entry], int]:
    text = read_text(path)
    if text.startswith("version: 2\n"):
        return list(_format_v2.read(text, path)), _format_v2.VERSION
    try:
        from . import _yaml  # version 1 files only: a replay of version 2 needs no YAML parser

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
    return validate(data, path), _version(data)


def _version(data: object) -> int:
    version = data.get("version") if isinstance(data, dict) else None
    return version if type(version) is int else 0


def version_of(path: Path) -> int:
    """The version a cassette file is written in."""
    return _read(path)[1]


def validate(data: object, path: Path) -> list[Entry]:
    """Check the top of a parsed cassette and build its entries, whatever its version."""
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
    if version == _VERSION_1 and type(version) is int:
        from . import _format_v1

        return _format_v1.from_data(data, path)
    if version == _format_v2.VERSION and type(version) is int:
        return _format_v2.from_data(data, path)
    known = " and ".join(map(str, _VERSIONS))
    raise CassetteError(
        f"{path}: cassette version {version!r} is not supported; this pytest-llmcache "
        f"reads versions {known} (upgrade pytest-llmcache, or re-record the file)"
    )


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
    """Keep a JSON copy of a version 1 file's entries in the parse cache (best effort)."""
    if cached is not None:
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = {"stamp": list(stamp), "entries": [e.to_data() for e in entries]}
            _atomic_write(cached, json.dumps(data, separators=(",", ":")))


def _cache_file(folder: Path | None, path: Path) -> Path | None:
    if folder is None:
        return None
    name = hashlib.sha1(os.path.abspath(path).encode(), usedforsecurity=False).hexdigest()
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
