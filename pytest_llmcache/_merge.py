"""A git merge driver for cassettes: two re-recordings merged entry by entry, never a conflict.

Git gives the driver the common ancestor (``%O``), our version (``%A``, where the result
goes) and theirs (``%B``). The result holds every entry of either side, paired by key and
occurrence. A slot only one side changed takes that side's entry; a slot both sides changed
takes the newer recording, and the driver says so. The result is written atomically and is
always a valid cassette; when a side cannot be read, ``%A`` is left as it is and git reports
a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ._cassette import Cassette, CassetteError, Entry
from ._compare import read_cassette, slots
from ._secrets import mask_secrets

__all__ = ["Merged", "merge", "run_driver"]

_SIDES = ("common ancestor", "our version", "their version")

Slot = tuple[str, int]


@dataclass
class Merged:
    """The merged entries, and a message for each slot both sides changed."""

    entries: list[Entry] = field(default_factory=list)
    both_changed: list[str] = field(default_factory=list)


def merge(base: list[Entry], ours: list[Entry], theirs: list[Entry]) -> Merged:
    """The union of ``ours`` and ``theirs``, slot by slot, against their ancestor ``base``."""
    old, a, b = slots(base), slots(ours), slots(theirs)
    merged = Merged()
    chosen: dict[Slot, Entry] = {}
    for slot, mine in a.items():
        other = b.get(slot)
        if other is None or _same(mine, other):
            chosen[slot] = mine
            continue
        ancestor = old.get(slot)
        if ancestor is not None and _same(ancestor, mine):
            chosen[slot] = other  # only they changed it
        elif ancestor is not None and _same(ancestor, other):
            chosen[slot] = mine  # only we did
        else:
            newer = other if other.recorded_datetime() > mine.recorded_datetime() else mine
            chosen[slot] = newer
            kept, lost = ("theirs", "ours") if newer is other else ("ours", "theirs")
            merged.both_changed.append(
                f"entry {slot[0][:12]} (occurrence {slot[1] + 1}) changed on both sides; kept "
                f"the newer recording, {kept} ({newer.recorded_at}), over {lost} "
                f"({(mine if newer is other else other).recorded_at})"
            )
    order = list(a)
    theirs_order = list(b)
    for position, slot in enumerate(theirs_order):
        if slot in chosen:
            continue
        chosen[slot] = b[slot]
        # After the entry that precedes it in their file, if we have it; else at the end.
        before = theirs_order[position - 1] if position else None
        order.insert(order.index(before) + 1 if before in order else len(order), slot)
    merged.entries = [chosen[slot] for slot in _in_call_order(order)]
    return merged


def _in_call_order(order: list[Slot]) -> list[Slot]:
    """The same places, each key's occurrences in order (the n-th is the n-th in the file)."""
    by_key: dict[str, list[int]] = {}
    for slot in order:
        by_key.setdefault(slot[0], []).append(slot[1])
    for occurrences in by_key.values():
        occurrences.sort(reverse=True)
    return [(key, by_key[key].pop()) for key, _ in order]


def _same(one: Entry, other: Entry) -> bool:
    return one is other or one.to_data() == other.to_data()


def run_driver(base: Path, ours: Path, theirs: Path, name: str, err: TextIO) -> int:
    """Merge ``theirs`` into ``ours`` (git's ``%O %A %B %P``); return the exit status."""
    sides: list[list[Entry]] = []
    for path, side in zip((base, ours, theirs), _SIDES, strict=True):
        try:
            sides.append(read_cassette(path, name))
        except CassetteError as exc:
            problem = f"{side}: {exc} ({name} left as ours)"
            err.write(f"llm-cache merge-driver: error: {mask_secrets(problem)}\n")
            return 1
    merged = merge(*sides)
    for message in merged.both_changed:
        err.write(f"llm-cache merge-driver: {name}: {message}\n")
    result = Cassette(ours, merged.entries)
    result.dirty = True
    try:
        result.save_unlocked()
    except CassetteError as exc:
        err.write(f"llm-cache merge-driver: error: {mask_secrets(str(exc))}\n")
        return 1
    return 0
