"""The run's report: the terminal summary section and the JSON file for CI dashboards.

Both show test ids and paths, which a parametrized test can fill with anything, a URL with
its credentials included: every string goes through :func:`mask_secrets` on its way out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._audit import Audit
from ._secrets import mask_secrets
from ._stats import RunStats
from ._usage import Usage, price_of

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from ._engine import Engine

__all__ = ["changed", "summary_lines", "write_json", "write_summary"]


def changed(stats: RunStats) -> list[list[str]]:
    """The drift records whose answer or shape changed (what ``--llm-cache-fail-on-drift``
    fails on)."""
    if not stats.drift:
        return []
    from ._drift import CHANGED  # loaded already: only recording makes drift records

    return [record for record in stats.drift if record[3] in CHANGED]


_MAX_LISTED = 10


def _dollars(engine: Engine) -> float | None:
    """The saving in dollars, only from the user's own price table."""
    prices = engine.settings.prices
    if not prices:
        return None
    total = 0.0
    for model, (tokens_in, tokens_out) in engine.stats.saved_tokens.items():
        total += price_of(Usage(model, tokens_in, tokens_out), prices) or 0.0
    return total


def summary_lines(engine: Engine, audit: Audit | None = None) -> list[str]:
    """The lines of the ``llm-cache`` section; empty when no call was cached."""
    return [mask_secrets(line) for line in _summary_lines(engine, audit)]


def _summary_lines(engine: Engine, audit: Audit | None) -> list[str]:
    stats = engine.stats
    counts = stats.counts
    audit = audit or Audit()
    if not any(counts.as_dict().values()) and not (audit.unused or audit.deleted):
        return []
    parts = [
        f"{counts.replayed} replayed",
        f"{counts.recorded} recorded",
        f"{counts.missed} missed",
        f"{counts.expired} expired",
    ]
    if counts.passed_through:
        parts.append(f"{counts.passed_through} not stored (429/5xx)")
    if engine.settings.mode.value != "record":
        parts.append(f"{len(audit.unused)} unused")
    lines = [f"mode {engine.settings.mode.value}: " + ", ".join(parts)]
    if counts.replayed:
        saved = (
            f"saved: {stats.input_tokens + stats.output_tokens:,} tokens "
            f"({stats.input_tokens:,} in, {stats.output_tokens:,} out), "
            f"{stats.saved_seconds:.1f} s of calls"
        )
        dollars = _dollars(engine)
        if dollars is not None:
            saved += f", ~${dollars:.4f}"
        lines.append(saved)
    if stats.written:
        lines.append(f"cassettes written: {len(stats.written)}")
    lines += _listed("missed in", stats.missed_tests)
    if stats.missed_tests:
        if len(stats.missed_tests) > _MAX_LISTED:
            # Too many to name: the whole suite in auto mode records just what is missing.
            lines.append("fix: pytest --llm-cache=auto")
        else:
            targets = " ".join(f"'{n}'" for n in stats.missed_tests)
            lines.append(f"fix: pytest --llm-cache=auto {targets}")
    if stats.expired_tests:
        lines.append(
            f"expired entries in {len(stats.expired_tests)} test(s); "
            "refresh them: pytest --llm-cache=auto"
        )
    if audit.unused and not (audit.pruned or audit.deleted):
        # Only the lines shown are worked out: a large cassette may leave thousands unused.
        shown = [f"{engine.display(Path(p))} {key}" for p, key in audit.unused[:_MAX_LISTED]]
        listed = shown + [""] * (len(audit.unused) - len(shown))
        lines += _listed("unused entries (no passing test replayed them):", listed, counted=False)
        lines.append("remove them: pytest --llm-cache-prune (after a complete run)")
    if audit.unused and engine.settings.strict and not audit.pruned:
        # The run fails for them (see pytest_sessionfinish): say so, or it exits 1 unexplained.
        lines.append(f"--llm-cache-strict: {len(audit.unused)} unused entries fail the run")
    for path, removed in audit.pruned:
        lines.append(f"pruned {removed} unused entries from {engine.display(Path(path))}")
    for path in audit.deleted:
        lines.append(f"deleted {engine.display(Path(path))}")
    lines += [f"error: {e}" for e in audit.errors]
    lines += _drift_lines(engine)
    return lines


def _drift_lines(engine: Engine) -> list[str]:
    """Counts per class of the entries recorded, then each changed one with its diff."""
    records = engine.stats.drift
    if not records:
        return []
    from ._drift import LABELS

    counts = _drift_counts(records)
    lines = ["drift: " + ", ".join(f"{counts[k]} {label}" for k, label in LABELS.items())]
    found = changed(engine.stats)
    for test, path, key, kind, diff in found[:_MAX_LISTED]:
        lines.append(f"  {LABELS[kind]}: {test} ({engine.display(Path(path))} {key[:12]})")
        lines.append(f"    {diff}")
    if len(found) > _MAX_LISTED:
        lines.append(f"  ... and {len(found) - _MAX_LISTED} more (--llm-cache-report lists all)")
    if found and engine.settings.fail_on_drift:
        lines.append(f"--llm-cache-fail-on-drift: {len(found)} changed entries fail the run")
    return lines


def _drift_counts(records: list[list[str]]) -> dict[str, int]:
    if not records:
        return {}
    from ._drift import KINDS

    counts = dict.fromkeys(KINDS, 0)
    for record in records:
        counts[record[3]] = counts.get(record[3], 0) + 1
    return counts


def _listed(title: str, items: list[str], counted: bool = True) -> list[str]:
    if not items:
        return []
    lines = [f"{title} {len(items)} test(s):" if counted else title]
    lines += [f"  {item}" for item in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        lines.append(f"  ... and {len(items) - _MAX_LISTED} more")
    return lines


def write_summary(engine: Engine, terminal: TerminalReporter, audit: Audit | None) -> None:
    """Write the section to the terminal, if there is anything to say."""
    lines = summary_lines(engine, audit)
    if lines:
        terminal.section("llm-cache")
        for line in lines:
            terminal.write_line(line)


def write_json(engine: Engine, audit: Audit | None, path: Path) -> None:
    """The same figures as the summary, as JSON (``--llm-cache-report=PATH``)."""
    stats = engine.stats
    audit = audit or Audit()
    data: dict[str, Any] = {
        "mode": engine.settings.mode.value,
        **stats.counts.as_dict(),
        "unused": len(audit.unused),
        "saved": {
            "input_tokens": stats.input_tokens,
            "output_tokens": stats.output_tokens,
            "seconds": round(stats.saved_seconds, 3),
            "dollars": _dollars(engine),
            "by_model": {
                model: {"input_tokens": t[0], "output_tokens": t[1]}
                for model, t in sorted(stats.saved_tokens.items())
            },
        },
        "missed_tests": stats.missed_tests,
        "expired_tests": stats.expired_tests,
        "unused_entries": [{"cassette": p, "key": k} for p, k in audit.unused],
        "pruned": [{"cassette": p, "removed": n} for p, n in audit.pruned],
        "deleted": audit.deleted,
        "written": stats.written,
        "drift": {
            "counts": _drift_counts(stats.drift),
            "changed": [
                {"test": test, "cassette": path, "key": key, "kind": kind, "diff": diff}
                for test, path, key, kind, diff in changed(stats)
            ],
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_masked(data), indent=2) + "\n", encoding="utf-8")


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
