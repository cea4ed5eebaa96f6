"""Two recordings of the same cassettes, compared entry by entry (``llm-cache diff``).

Entries are paired by key and occurrence (the n-th recorded answer to the same request), and
each pair is classified as the drift report classifies a re-recording; an entry on one side
only is ``new`` or ``removed``. The old side is two files or folders, or a git revision of the
same paths, read with ``git show`` so that nothing is checked out.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._cassette import CassetteError, Entry, looks_like_cassette, parse, read_text
from ._drift import KINDS, LABELS, classify
from ._secrets import redact_url

__all__ = [
    "ALL_KINDS",
    "CompareError",
    "Difference",
    "FileFinder",
    "compare_entries",
    "compare_git",
    "compare_paths",
    "counts",
    "label",
    "read_cassette",
    "slots",
]

ALL_KINDS = (*KINDS, "removed")
"""The drift classes, plus an entry that the new side no longer has."""
QUIET = frozenset({"unchanged", "volatile"})
"""What does not make ``llm-cache diff`` exit 1."""

FileFinder = Callable[[Path], list[Path]]
"""The cassettes under a folder."""


class CompareError(Exception):
    """The comparison cannot be made as asked (a bad revision, not a git repository)."""


@dataclass(frozen=True)
class Difference:
    """One entry, classified: new, removed, unchanged, volatile, answer or shape."""

    cassette: str
    key: str
    occurrence: int
    kind: str
    diff: str
    test: str | None

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (for ``--json``)."""
        return asdict(self)


def compare_entries(cassette: str, old: list[Entry], new: list[Entry]) -> list[Difference]:
    """Pair the entries of two versions of one cassette and classify each pair."""
    before = slots(old)
    found: list[Difference] = []
    for (key, occurrence), entry in slots(new).items():
        drift = classify(before.pop((key, occurrence), None), entry)
        found.append(Difference(cassette, key, occurrence, drift.kind, drift.line, entry.test))
    for (key, occurrence), entry in before.items():
        request = entry.request
        line = f"{request.get('method', '?')} {redact_url(str(request.get('url', '?')))}"
        found.append(Difference(cassette, key, occurrence, "removed", line, entry.test))
    return found


def slots(entries: Iterable[Entry]) -> dict[tuple[str, int], Entry]:
    """Entries by ``(key, occurrence)``: the n-th entry of a key answers its n-th call."""
    slots: dict[tuple[str, int], Entry] = {}
    seen: dict[str, int] = {}
    for entry in entries:
        occurrence = seen.get(entry.key, 0)
        seen[entry.key] = occurrence + 1
        slots[(entry.key, occurrence)] = entry
    return slots


def read_cassette(path: Path, shown_as: str | None = None) -> list[Entry]:
    """Every entry of ``path``, checked; an empty file has none.

    ``shown_as`` replaces the path in error messages (a temporary copy of a git blob).
    """
    try:
        if not read_text(path).strip():
            return []
        return parse(path)
    except CassetteError as exc:
        if shown_as is None:
            raise
        raise CassetteError(str(exc).replace(str(path), shown_as)) from None


def compare_paths(old: Path, new: Path, find: FileFinder) -> list[Difference]:
    """Two cassettes, or two folders of them paired by relative path; a missing side has
    no entries."""
    if not old.exists() and not new.exists():
        raise CompareError(f"neither {old} nor {new} exists")
    if old.is_file() or new.is_file():
        name = str(new if new.exists() else old)
        return compare_entries(name, _entries(old), _entries(new))
    before = {p.relative_to(old): p for p in (find(old) if old.exists() else [])}
    after = {p.relative_to(new): p for p in (find(new) if new.exists() else [])}
    found: list[Difference] = []
    for relative in sorted(set(before) | set(after)):
        name = str(new / relative if relative in after else old / relative)
        found += compare_entries(
            name, _entries(before.get(relative)), _entries(after.get(relative))
        )
    return found


def _entries(path: Path | None) -> list[Entry]:
    return [] if path is None or not path.exists() else read_cassette(path)


def compare_git(path: Path, revision: str, find: FileFinder) -> list[Difference]:
    """The cassettes at ``path`` now, compared with the same paths at ``revision``."""
    where = path if path.is_dir() else path.parent
    while not where.exists():
        where = where.parent
    top = Path(_git(where, "rev-parse", "--show-toplevel").strip())
    if _git_status(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}") != 0:
        raise CompareError(f"{revision}: no such git revision (try: git fetch, or git log)")
    absolute = path.resolve()
    try:
        relative = absolute.relative_to(top.resolve())
    except ValueError:
        raise CompareError(f"{path}: not inside the git repository at {top}") from None
    listed = _git(top, "ls-tree", "-r", "-z", "--name-only", revision, "--", relative.as_posix())
    before = [Path(name) for name in listed.split("\0") if name.endswith((".yaml", ".yml"))]
    if absolute.is_dir():
        now = {p.resolve().relative_to(top.resolve()): p for p in find(absolute)}
    else:
        now = {relative: absolute} if absolute.exists() else {}
    found: list[Difference] = []
    with tempfile.TemporaryDirectory(prefix="llm-cache-diff-") as scratch:
        for name in sorted(set(before) | set(now)):
            old: list[Entry] = []
            if name in before:
                blob = _git_bytes(top, "show", f"{revision}:{name.as_posix()}")
                if not looks_like_cassette(blob) and name not in now:
                    continue  # other YAML of the repository
                copy = Path(scratch) / "old.yaml"
                copy.write_bytes(blob)
                old = read_cassette(copy, f"{revision}:{name.as_posix()}")
            new = read_cassette(now[name]) if name in now else []
            found += compare_entries(str(top / name), old, new)
    return found


def _git(cwd: Path, *args: str) -> str:
    return _git_bytes(cwd, *args).decode("utf-8", "replace")


def _git_bytes(cwd: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise CompareError(f"cannot run git: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CompareError(f"git {args[0]}: {message[0] if message else 'failed'}")
    return done.stdout


def _git_status(cwd: Path, *args: str) -> int:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False).returncode


def counts(found: Iterable[Difference]) -> dict[str, int]:
    """How many entries fell into each class."""
    result = dict.fromkeys(ALL_KINDS, 0)
    for item in found:
        result[item.kind] += 1
    return result


def label(kind: str) -> str:
    """How a class is named in the report."""
    return LABELS.get(kind, kind)
