"""The terminal summary: what the cache did in this run, and the command that fixes a miss."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from ._engine import Engine

__all__ = ["summary_lines", "write_summary"]

_MAX_LISTED = 10


def summary_lines(engine: Engine) -> list[str]:
    """The lines of the ``llm-cache`` section; empty when no call was cached."""
    report = engine.report
    counts = report.counts
    if not any(counts.as_dict().values()):
        return []
    mode = engine.settings.mode.value
    parts = [f"{counts.replayed} replayed", f"{counts.recorded} recorded"]
    parts.append(f"{counts.missed} missed")
    parts.append(f"{counts.expired} expired")
    if counts.passed_through:
        parts.append(f"{counts.passed_through} not stored (429/5xx)")
    lines = [f"mode {mode}: " + ", ".join(parts)]
    if report.written:
        lines.append(f"cassettes written: {len(report.written)}")
    if report.missed_tests:
        lines.append(f"missed in {len(report.missed_tests)} test(s):")
        lines += [f"  {nodeid}" for nodeid in report.missed_tests[:_MAX_LISTED]]
        if len(report.missed_tests) > _MAX_LISTED:
            lines.append(f"  ... and {len(report.missed_tests) - _MAX_LISTED} more")
        targets = " ".join(f"'{n}'" for n in report.missed_tests[:_MAX_LISTED])
        if len(report.missed_tests) > _MAX_LISTED:
            targets = ""
        lines.append(f"fix: pytest --llm-cache=auto {targets}".rstrip())
    if report.expired_tests:
        lines.append(f"expired entries in {len(report.expired_tests)} test(s); "
                     "refresh them: pytest --llm-cache=auto")
    return lines


def write_summary(engine: Engine, terminal: TerminalReporter) -> None:
    """Write the section to the terminal, if there is anything to say."""
    lines = summary_lines(engine)
    if lines:
        terminal.section("llm-cache")
        for line in lines:
            terminal.write_line(line)
