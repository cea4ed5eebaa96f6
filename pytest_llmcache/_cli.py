"""The ``llm-cache`` command: list, show, check, prune and upgrade cassettes; import vcrpy ones;
compare two recordings (``diff``) and merge them in git (``merge-driver``).

Every failure is one line, ``llm-cache: error: <file>: <what>``, and a non-zero exit: 2 for
a usage mistake (a missing path, a bad option), 1 for a problem found in a file. ``diff``
exits 1 when it finds a change that matters and 2 when it cannot compare. A file is only ever
rewritten by ``prune``, ``upgrade``, ``import-vcr`` and ``merge-driver``, atomically, and
never on an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import __version__, _check, _show
from ._cassette import (
    CASSETTE_VERSION,
    Cassette,
    CassetteError,
    Entry,
    looks_like_cassette,
    parse,
    version_of,
)
from ._secrets import mask_secrets, redact_url
from ._settings import OptionError, parse_ttl

__all__ = ["UsageProblem", "find_cassettes", "main"]

PROG = "llm-cache"
_SKIPPED_DIRS = frozenset({"node_modules", "site-packages", "__pycache__"})


class UsageProblem(Exception):
    """The command line asks for something impossible (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.command(args, sys.stdout, sys.stderr)
    except UsageProblem as exc:
        _error(sys.stderr, str(exc))
        return 2
    except KeyboardInterrupt:
        _error(sys.stderr, "interrupted")
        return 130
    except BrokenPipeError:
        # `llm-cache list | head` closed the pipe: not an error worth a traceback.
        sys.stderr.close()
        return 0
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and maintain pytest-llmcache cassettes.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    listing = commands.add_parser("list", help="cassettes with their entries, age and size")
    listing.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    listing.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    listing.set_defaults(command=_list)

    show = commands.add_parser("show", help="the entries of one cassette, readable")
    show.add_argument("file", metavar="FILE")
    show.add_argument("key", nargs="?", metavar="KEY", help="only entries whose key starts so")
    show.set_defaults(command=_show_command)

    check = commands.add_parser(
        "check", help="schema, version and secrets; exit 1 on any problem (pre-commit, CI)"
    )
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    check.add_argument(
        "--allow-secret",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a value shaped like an API key that is not one, or a '*' pattern of such "
        "values; repeatable (adds to llm_cache_allow_secrets of the pytest configuration and "
        "to the patterns each entry lists)",
    )
    check.set_defaults(command=_check_command)

    prune = commands.add_parser("prune", help="remove old or expired entries")
    prune.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    prune.add_argument(
        "--older-than", metavar="AGE", help="entries recorded longer ago than AGE (30d, 12h)"
    )
    prune.add_argument("--expired", action="store_true", help="entries older than their ttl")
    prune.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    prune.set_defaults(command=_prune)

    upgrade = commands.add_parser(
        "upgrade", help=f"rewrite older cassettes in the newest format (v{CASSETTE_VERSION})"
    )
    upgrade.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: .)")
    upgrade.add_argument(
        "--dry-run", action="store_true", help="say which files would change; change nothing"
    )
    upgrade.set_defaults(command=_upgrade)

    vcr = commands.add_parser(
        "import-vcr", help="convert vcrpy / pytest-recording cassettes (needs vcrpy)"
    )
    vcr.add_argument("src", metavar="SRC", help="a vcrpy cassette or a folder of them")
    vcr.add_argument(
        "dest", nargs="?", metavar="DEST", help="folder for the converted files (default: SRC)"
    )
    vcr.add_argument(
        "--in-place",
        action="store_true",
        help="replace each vcrpy cassette by its conversion (the plugin then finds it where "
        "pytest-recording did; git keeps the original)",
    )
    vcr.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        metavar="FIELD",
        help="a body field the tests leave out of the key (their ignore_fields); repeatable",
    )
    vcr.add_argument(
        "--match-header",
        action="append",
        default=[],
        metavar="NAME",
        help="a request header the tests put into the key (their match_headers); repeatable",
    )
    vcr.add_argument("-v", "--verbose", action="store_true", help="one line per converted file")
    vcr.set_defaults(command=_import_vcr)

    diff = commands.add_parser(
        "diff",
        help="what changed between two recordings, entry by entry; exit 1 when an answer, a "
        "shape, or the set of entries changed",
    )
    diff.add_argument("old", metavar="OLD", help="a cassette or a folder (with --git: PATH)")
    diff.add_argument("new", nargs="?", metavar="NEW", help="the cassette or folder to compare")
    diff.add_argument(
        "--git",
        metavar="REV",
        help="compare PATH with its version at git revision REV (read with git show)",
    )
    diff.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    diff.add_argument("-a", "--all", action="store_true", help="list unchanged entries too")
    diff.set_defaults(command=_diff)

    driver = commands.add_parser(
        "merge-driver",
        help="git merge driver: merge two versions of a cassette entry by entry "
        '(git config merge.llm-cache.driver "llm-cache merge-driver %%O %%A %%B %%P")',
    )
    driver.add_argument("base", metavar="BASE", help="%%O: the common ancestor")
    driver.add_argument("ours", metavar="OURS", help="%%A: our version, replaced by the result")
    driver.add_argument("theirs", metavar="THEIRS", help="%%B: their version")
    driver.add_argument("name", nargs="?", metavar="PATH", help="%%P: the path, for messages")
    driver.set_defaults(command=_merge_driver)
    return parser


# -- finding and reading cassettes --------------------------------------------------------


def find_cassettes(paths: Sequence[str]) -> list[Path]:
    """The cassettes named, or found under the folders named (default: the current folder).

    A file named explicitly is always taken; in a folder, only YAML files with this
    plugin's top-level ``version`` and ``entries`` are, so other YAML is skipped quietly.
    """
    found: list[Path] = []
    for raw in paths or ["."]:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in _yaml_files(path) if _looks_like_cassette(p))
        elif path.exists():
            found.append(path)
        else:
            raise UsageProblem(f"{raw}: no such file or directory")
    return list(dict.fromkeys(found))


def _yaml_files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in parts[:-1]):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield path


def _looks_like_cassette(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return True  # unreadable: let the command say so
    return looks_like_cassette(head)


@dataclass(frozen=True)
class _Loaded:
    path: Path
    entries: list[Entry]
    size: int


def _load_all(paths: list[Path], err: TextIO) -> tuple[list[_Loaded], int]:
    """Parse each cassette; report the broken ones and return how many there were."""
    loaded: list[_Loaded] = []
    failed = 0
    for path in paths:
        try:
            entries = _parse(path)
            size = path.stat().st_size
        except (CassetteError, OSError) as exc:
            _error(err, str(exc))
            failed += 1
            continue
        loaded.append(_Loaded(path, entries, size))
    return loaded, failed


def _parse(path: Path) -> list[Entry]:
    """The entries of a cassette; a vcrpy file (valid YAML with a ``version``) is refused."""
    entries = parse(path)
    if not entries and _check.is_vcrpy_cassette(path.read_text("utf-8")):
        raise CassetteError(f"{path}: {_check.VCRPY_PROBLEM}")
    return entries


def _error(err: TextIO, message: str) -> None:
    err.write(f"{PROG}: error: {mask_secrets(message)}\n")
    err.flush()


# -- list -----------------------------------------------------------------------------------


def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    loaded, failed = _load_all(find_cassettes(args.paths), err)
    now = datetime.now(timezone.utc)
    rows = [_summary(item, now) for item in loaded]
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 1 if failed else 0
    if not rows:
        if not failed:
            out.write(f"no cassettes under {', '.join(args.paths or ['.'])}\n")
        return 1 if failed else 0
    width = max(len("CASSETTE"), *(len(r["path"]) for r in rows))
    out.write(f"{'CASSETTE':<{width}}  ENTRIES  OLDEST  EXPIRED      SIZE\n")
    for r in rows:
        age = "-" if r["oldest_age_seconds"] is None else _show.format_age(r["oldest_age_seconds"])
        out.write(
            f"{r['path']:<{width}}  {r['entries']:>7}  {age:>6}  {r['expired']:>7}  "
            f"{_show.format_size(r['bytes']):>8}\n"
        )
    total = sum(r["bytes"] for r in rows)
    out.write(
        f"{len(rows)} cassettes, {sum(r['entries'] for r in rows)} entries, "
        f"{sum(r['expired'] for r in rows)} expired, {_show.format_size(total)}\n"
    )
    return 1 if failed else 0


def _summary(item: _Loaded, now: datetime) -> dict[str, Any]:
    oldest = min((e.recorded_datetime() for e in item.entries), default=None)
    return {
        "path": str(item.path),
        "entries": len(item.entries),
        "oldest_recorded_at": None if oldest is None else oldest.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "oldest_age_seconds": None if oldest is None else int((now - oldest).total_seconds()),
        "expired": sum(e.is_expired(now) for e in item.entries),
        "bytes": item.size,
    }


# -- show -----------------------------------------------------------------------------------


def _show_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = Path(args.file)
    if not path.exists():
        raise UsageProblem(f"{args.file}: no such file")
    if path.is_dir():
        raise UsageProblem(f"{args.file}: is a folder; show takes one cassette file")
    try:
        entries = _parse(path)
    except (CassetteError, OSError) as exc:
        _error(err, str(exc))
        return 1
    chosen = [(n, e) for n, e in enumerate(entries, 1) if e.key.startswith(args.key or "")]
    if not chosen:
        if not entries:
            out.write(f"{path}: no entries\n")
            return 0
        keys = ", ".join(e.key[:12] for e in entries[:5])
        _error(err, f"{path}: no entry whose key starts with {args.key!r} (keys: {keys}...)")
        return 1
    now = datetime.now(timezone.utc)
    for i, (number, entry) in enumerate(chosen):
        if i:
            out.write("\n")
        out.write(_show.render_entry(entry, f"{path}: entry {number} of {len(entries)}", now))
    return 0


# -- check ----------------------------------------------------------------------------------


def _check_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    paths = find_cassettes(args.paths)
    problems = 0
    entries = 0
    from_ini: dict[Path, tuple[str, ...]] = {}
    for path in paths:
        folder = path.parent
        if folder not in from_ini:
            from_ini[folder] = _check.ini_allow_secrets(folder)
        allowed = (*from_ini[folder], *args.allow_secret)
        result = _check.check_file(path, allowed)
        entries += result.entries
        for line in result.problems:
            out.write(line + "\n")
        problems += len(result.problems)
    if problems:
        err.write(
            f"{PROG}: {problems} problem(s) in {len(paths)} cassette(s); re-record the "
            "entries, or fix the files by hand and run `llm-cache check` again\n"
        )
        return 1
    out.write(f"{len(paths)} cassette(s), {entries} entries: no problems\n")
    return 0


# -- prune ----------------------------------------------------------------------------------


def _prune(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not args.older_than and not args.expired:
        raise UsageProblem("prune: say what to remove: --older-than AGE and/or --expired")
    max_age = None
    if args.older_than:
        try:
            max_age = parse_ttl(args.older_than, "--older-than")
        except OptionError as exc:
            raise UsageProblem(str(exc)) from None
    loaded, failed = _load_all(find_cassettes(args.paths), err)
    now = datetime.now(timezone.utc)
    verb = "would remove" if args.dry_run else "removed"
    removed_total = 0
    touched = 0
    for item in loaded:
        removed = []
        for entry in item.entries:
            age = (now - entry.recorded_datetime()).total_seconds()
            if max_age is not None and age > max_age:
                removed.append((entry, f"{_show.format_age(age)} old"))
            elif args.expired and entry.is_expired(now):
                removed.append((entry, f"expired, ttl {entry.ttl:g}s"))
        if not removed:
            continue
        touched += 1
        removed_total += len(removed)
        for entry, why in removed:
            request = entry.request
            out.write(
                f"{item.path}: {verb} {request.get('method', '?')} "
                f"{redact_url(str(request.get('url', '?')))} "
                f"(key {entry.key[:12]}, recorded {entry.recorded_at}, {why})\n"
            )
        gone = {id(entry) for entry, _ in removed}
        kept = [e for e in item.entries if id(e) not in gone]
        if not kept:
            out.write(
                f"{item.path}: {'would delete' if args.dry_run else 'deleted'} (no entries left)\n"
            )
        if args.dry_run:
            continue
        try:
            _rewrite(item.path, kept)
        except (CassetteError, OSError) as exc:
            _error(err, str(exc))
            failed += 1
    out.write(f"{verb} {removed_total} entries from {touched} cassette(s)\n")
    return 1 if failed else 0


def _rewrite(path: Path, kept: list[Entry]) -> None:
    if not kept:
        path.unlink()
        return
    cassette = Cassette(path, kept)
    cassette.dirty = True
    cassette.save()


# -- upgrade --------------------------------------------------------------------------------


def _upgrade(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    failed = 0
    upgraded = 0
    verb = "would upgrade" if args.dry_run else "upgraded"
    paths = find_cassettes(args.paths)
    for path in paths:
        try:
            version = version_of(path)
            if version == CASSETTE_VERSION:
                continue
            # Every entry read and checked before anything is written.
            entries = _parse(path)
            cassette = Cassette(path, entries)
            _same_replay(path, entries, cassette.render())
            if not args.dry_run:
                cassette.dirty = True
                cassette.save()
        except (CassetteError, OSError) as exc:
            _error(err, str(exc))
            failed += 1
            continue
        upgraded += 1
        out.write(f"{path}: {verb} from version {version} to {CASSETTE_VERSION}\n")
    out.write(f"{verb} {upgraded} of {len(paths)} cassette(s)\n")
    return 1 if failed else 0


def _same_replay(path: Path, entries: list[Entry], rendered: str) -> None:
    """Refuse an upgrade whose file would replay anything differently."""
    from . import _format_v2

    again = _format_v2.read(rendered, path)
    for old, new in zip(entries, again, strict=True):
        before, after = old.to_response(), new.to_response()
        if (old.key, before.status, before.headers, before.chunks) != (
            new.key,
            after.status,
            after.headers,
            after.chunks,
        ):
            raise CassetteError(
                f"{path}: entry {old.key[:12]} would not replay the same in the new format; "
                "the file was left as it is"
            )


# -- import-vcr -----------------------------------------------------------------------------


def _import_vcr(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import _vcr_import

    try:
        return _vcr_import.run(
            Path(args.src),
            None if args.dest is None else Path(args.dest),
            in_place=args.in_place,
            ignore_fields=tuple(args.ignore_field),
            match_headers=tuple(h.lower() for h in args.match_header),
            verbose=args.verbose,
            out=out,
            err=err,
        )
    except _vcr_import.ImportUsageError as exc:
        raise UsageProblem(str(exc)) from None


# -- diff -----------------------------------------------------------------------------------


def _diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import _compare

    def find(folder: Path) -> list[Path]:
        return find_cassettes([str(folder)])

    if args.git is not None and args.new is not None:
        raise UsageProblem("diff: give NEW or --git REV, not both")
    try:
        if args.git is not None:
            found = _compare.compare_git(Path(args.old), args.git, find)
        elif args.new is None:
            raise UsageProblem("diff: give two cassettes or folders (OLD NEW), or PATH --git REV")
        else:
            found = _compare.compare_paths(Path(args.old), Path(args.new), find)
    except _compare.CompareError as exc:
        raise UsageProblem(f"diff: {exc}") from None
    except CassetteError as exc:
        _error(err, str(exc))
        return 2
    counts = _compare.counts(found)
    status = 1 if any(d.kind not in _compare.QUIET for d in found) else 0
    if args.json:
        document = {"counts": counts, "entries": [d.as_dict() for d in found]}
        out.write(mask_secrets(json.dumps(document, indent=2)) + "\n")
        return status
    cassette = None
    for item in found:
        if item.kind == "unchanged" and not args.all:
            continue
        if item.cassette != cassette:
            cassette = item.cassette
            out.write(f"{cassette}\n")
        test = f" {item.test}" if item.test else ""
        line = f"  {_compare.label(item.kind)}: {item.key[:12]} #{item.occurrence + 1}{test}"
        out.write(mask_secrets(line) + "\n")
        if item.diff:
            out.write(mask_secrets(f"    {item.diff}") + "\n")
    cassettes = len({d.cassette for d in found})
    summary = ", ".join(f"{n} {_compare.label(kind)}" for kind, n in counts.items())
    out.write(f"{len(found)} entries in {cassettes} cassette(s): {summary}\n")
    return status


# -- merge-driver ---------------------------------------------------------------------------


def _merge_driver(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from . import _merge

    return _merge.run_driver(
        Path(args.base), Path(args.ours), Path(args.theirs), args.name or args.ours, err
    )
