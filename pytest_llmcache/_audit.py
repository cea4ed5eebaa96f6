"""After a run: which recorded entries no passing test replayed, and pruning them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._cassette import Cassette, CassetteError, parse
from ._lock import cassette_lock
from ._settings import Mode, Settings
from ._stats import RunStats

__all__ = ["Audit", "audit", "finish_run", "prune"]


@dataclass
class Audit:
    """What the run left unused, and what pruning removed."""

    unused: list[tuple[str, str]] = field(default_factory=list)
    """``(cassette, key)`` of every entry no passing test replayed."""
    pruned: list[tuple[str, int]] = field(default_factory=list)
    """``(cassette, entries removed)`` per rewritten cassette."""
    deleted: list[str] = field(default_factory=list)
    """Cassette files no collected test owns, removed by pruning."""
    errors: list[str] = field(default_factory=list)


def _slots(cassette: Cassette) -> list[tuple[str, int, int]]:
    """``(key, occurrence, position)`` of every entry, occurrence counted per key."""
    seen: dict[str, int] = {}
    slots = []
    for position, entry in enumerate(cassette.entries):
        occurrence = seen.get(entry.key, 0)
        seen[entry.key] = occurrence + 1
        slots.append((entry.key, occurrence, position))
    return slots


def audit(stats: RunStats, read: Callable[[Path], Cassette] = Cassette.load) -> Audit:
    """Find the entries of this run's cassettes that no passing test used."""
    result = Audit()
    for path in sorted(stats.owned):
        file = Path(path)
        if not file.exists():
            continue
        try:
            cassette = read(file)
        except CassetteError as exc:
            result.errors.append(str(exc))
            continue
        used = {(key, occurrence) for key, occurrence in stats.used.get(path, [])}
        for key, occurrence, _ in _slots(cassette):
            if (key, occurrence) not in used:
                result.unused.append((path, key))
    return result


def prune(stats: RunStats, result: Audit) -> None:
    """Remove unused entries and cassette files no collected test owns (complete runs only)."""
    unused_by_file: dict[str, int] = {}
    for path, _ in result.unused:
        unused_by_file[path] = unused_by_file.get(path, 0) + 1
    for path in sorted(unused_by_file):
        file = Path(path)
        used = {(key, occurrence) for key, occurrence in stats.used.get(path, [])}
        with cassette_lock(file):
            try:
                cassette = Cassette.load(file)
            except CassetteError as exc:
                result.errors.append(str(exc))
                continue
            kept = [
                cassette.entries[position]
                for key, occurrence, position in _slots(cassette)
                if (key, occurrence) in used
            ]
            removed = len(cassette) - len(kept)
            if not kept:
                file.unlink()
                result.deleted.append(path)
                continue
            rewritten = Cassette(file, kept)
            rewritten.dirty = True
            rewritten.save_unlocked()
        result.pruned.append((path, removed))
    owned = set(stats.owned)
    for folder in sorted(stats.folders):
        for file in sorted(Path(folder).glob("*.yaml")):
            if str(file) in owned or not _is_cassette(file):
                continue
            file.unlink()
            result.deleted.append(str(file))


def _is_cassette(file: Path) -> bool:
    """Only our own cassettes are ever deleted, never another tool's YAML."""
    try:
        parse(file)
    except CassetteError:
        return False
    return True


def finish_run(
    settings: Settings,
    stats: RunStats,
    *,
    complete: bool,
    read: Callable[[Path], Cassette] = Cassette.load,
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
