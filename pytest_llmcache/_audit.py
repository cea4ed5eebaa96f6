"""After a run: which recorded entries no passing test replayed, and pruning them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ._cassette import Cassette, CassetteError, parse
from ._lock import LockError, cassette_lock
from ._settings import Mode, Settings
from ._stats import RunStats

__all__ = ["Audit", "audit", "finish_run", "prune"]


class Audit:
    """What the run left unused, and what pruning removed."""

    # A plain class: a dataclass costs more to define than the rest of the module.
    __slots__ = ("deleted", "errors", "pruned", "unused")

    def __init__(
        self,
        unused: list[tuple[str, str]] | None = None,
        pruned: list[tuple[str, int]] | None = None,
        deleted: list[str] | None = None,
        errors: list[str] | None = None,
    ) -> None:
        self.unused = [] if unused is None else unused
        """``(cassette, key)`` of every entry no passing test replayed."""
        self.pruned = [] if pruned is None else pruned
        """``(cassette, entries removed)`` per rewritten cassette."""
        self.deleted = [] if deleted is None else deleted
        """Cassette files no collected test owns, removed by pruning."""
        self.errors = [] if errors is None else errors

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Audit):
            return NotImplemented
        return (self.unused, self.pruned, self.deleted, self.errors) == (
            other.unused,
            other.pruned,
            other.deleted,
            other.errors,
        )

    def __repr__(self) -> str:
        return (
            f"Audit(unused={self.unused!r}, pruned={self.pruned!r}, "
            f"deleted={self.deleted!r}, errors={self.errors!r})"
        )


def _slots(cassette: Cassette) -> Iterator[tuple[str, int, int]]:
    """``(key, occurrence, position)`` of every entry, occurrence counted per key."""
    seen: dict[str, int] = {}
    for position, key in enumerate(cassette.keys()):
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        yield key, occurrence, position


def _unjudged(stats: RunStats) -> set[str]:
    """Cached tests that were collected but did not pass: their calls were not all made."""
    return set(stats.collected) - set(stats.passed)


def _unjudged_entry(cassette: Cassette, position: int, unjudged: set[str]) -> bool:
    # Asked only when some test did not pass: the owner of an entry of a version 2 file is
    # read from its text, which replaying one entry of a large file must not do for all
    # (nor make an entry for each of the others).
    return bool(unjudged) and cassette.entries[position].test in unjudged


def _load(file: str) -> Cassette:
    return Cassette.load(Path(file))


def audit(stats: RunStats, read: Callable[[str], Cassette] = _load) -> Audit:
    """Find the entries of this run's cassettes that no test used.

    A cassette of a test that was skipped, xfailed or failed is not judged, nor an entry
    such a test recorded: its calls were not all made.
    """
    result = Audit()
    unjudged = _unjudged(stats)
    protected = set(stats.protected_paths)
    for path in sorted(stats.owned):
        # Most tests that made no call have no file: asked of the name, with no Path made.
        if path in protected or not os.path.exists(path):
            continue
        try:
            cassette = read(path)
        except CassetteError as exc:
            result.errors.append(str(exc))
            continue
        used = _used(stats, path)
        for key, occurrence, position in _slots(cassette):
            if (key, occurrence) not in used and not _unjudged_entry(cassette, position, unjudged):
                result.unused.append((path, key))
    return result


def _used(stats: RunStats, path: str) -> set[tuple[str, int]]:
    """The ``(key, occurrence)`` slots of ``path`` that passing tests used."""
    flat = iter(stats.used.get(path, ()))
    return set(zip(flat, flat, strict=True))


def prune(stats: RunStats, result: Audit) -> None:
    """Remove unused entries and cassette files no collected test owns (complete runs only)."""
    unjudged = _unjudged(stats)
    unused_by_file: dict[str, int] = {}
    for path, _ in result.unused:
        unused_by_file[path] = unused_by_file.get(path, 0) + 1
    for path in sorted(unused_by_file):
        file = Path(path)
        used = _used(stats, path)
        try:
            with cassette_lock(file):
                removed = _trim(file, used, unjudged, result)
        except LockError as exc:
            result.errors.append(f"{file}: not pruned: {exc}")
            continue
        if removed is None:
            continue
        result.pruned.append((path, removed))
    owned = set(stats.owned) | set(stats.protected_paths)
    collected = set(stats.collected)
    for folder in sorted(set(stats.folders) - set(stats.protected_folders)):
        for file in sorted(Path(folder).glob("*.yaml")):
            if str(file) in owned or not _is_orphan(file, collected):
                continue
            file.unlink()
            result.deleted.append(str(file))


def _trim(file: Path, used: set[tuple[str, int]], unjudged: set[str], result: Audit) -> int | None:
    """Keep only the used entries (and those of unjudged tests); ``None`` if nothing is left
    to count (the file was unreadable, or removed for being empty)."""
    try:
        cassette = Cassette.load(file)
    except CassetteError as exc:
        result.errors.append(str(exc))
        return None
    kept = [
        cassette.entries[position]
        for key, occurrence, position in _slots(cassette)
        if (key, occurrence) in used or _unjudged_entry(cassette, position, unjudged)
    ]
    if not kept:
        file.unlink()
        result.deleted.append(str(file))
        return None
    rewritten = Cassette(file, kept)
    rewritten.dirty = True
    rewritten.save_unlocked()
    return len(cassette) - len(kept)


def _is_orphan(file: Path, collected: set[str]) -> bool:
    """A cassette of ours (never another tool's YAML) that no collected test recorded into."""
    try:
        entries = parse(file)
    except CassetteError:
        return False
    return not any(entry.test in collected for entry in entries)


def finish_run(
    settings: Settings,
    stats: RunStats,
    *,
    complete: bool,
    read: Callable[[str], Cassette] = _load,
) -> Audit | None:
    """The end-of-run audit: unused entries, and pruning them after a complete run.

    ``record`` rewrote every cassette it touched, so nothing in them can be unused.
    ``read`` gives a cassette as it is on disk (the run may have it in memory already).
    """
    if settings.mode in (Mode.RECORD, Mode.OFF) or not stats.owned:
        return None
    result = audit(stats, read)
    if settings.prune and complete and not stats.partial:
        prune(stats, result)
    return result
