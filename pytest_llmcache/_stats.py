"""What a run did, in a form that xdist workers can send to the controller and be added up."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ._usage import Usage

__all__ = ["Counts", "RunStats"]


@dataclass
class Counts:
    """What happened to the calls of a test, or of a whole run."""

    replayed: int = 0
    recorded: int = 0
    missed: int = 0
    expired: int = 0
    passed_through: int = 0
    """Calls that went to the provider but were not stored (429, 5xx)."""

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        self.replayed += other.replayed
        self.recorded += other.recorded
        self.missed += other.missed
        self.expired += other.expired
        self.passed_through += other.passed_through

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class RunStats:
    """The totals of a run; every field survives a JSON round trip and adds up with ``merge``."""

    counts: Counts = field(default_factory=Counts)
    missed_tests: list[str] = field(default_factory=list)
    expired_tests: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    saved_seconds: float = 0.0
    saved_tokens: dict[str, list[int]] = field(default_factory=dict)
    """Per model: input and output tokens the replays did not spend."""
    used: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Per cassette: the ``[key, occurrence]`` slots replayed or recorded by passing tests."""
    owned: list[str] = field(default_factory=list)
    """Cassettes that tests of this run read or wrote."""
    expired_entries: list[list[str]] = field(default_factory=list)
    """``[cassette, key, test]`` of each expired entry replayed."""
    folders: list[str] = field(default_factory=list)
    """Cassette folders of the collected test modules (for ``--llm-cache-prune``)."""
    partial: bool = False
    """Whether some collected tests were deselected: a partial run prunes nothing."""
    collected: list[str] = field(default_factory=list)
    """Node ids of the cached tests collected."""
    passed: list[str] = field(default_factory=list)
    """Node ids of the cached tests that passed."""
    protected_paths: list[str] = field(default_factory=list)
    """Cassettes of tests that did not pass (skipped, xfailed, failed): never judged unused."""
    protected_folders: list[str] = field(default_factory=list)
    """Cassette folders where such a test's cassette cannot be known: no file deleted there."""
    drift: list[list[str]] = field(default_factory=list)
    """``[test, cassette, key, class, one-line diff]`` of each entry recorded, compared with
    what the cassette held before (the drift report)."""

    def add_outcomes(
        self,
        *,
        collected: list[str],
        passed: list[str],
        protected_paths: list[str],
        protected_folders: list[str],
    ) -> None:
        """Add how this process's cached tests ended."""
        known = set(self.collected)
        self.collected += [t for t in collected if t not in known]
        self.passed += passed
        self.protected_paths += [p for p in protected_paths if p not in self.protected_paths]
        self.protected_folders += [f for f in protected_folders if f not in self.protected_folders]

    def add_saving(self, usage: Usage, seconds: float) -> None:
        """Count one replay: the tokens and time it spared."""
        self.saved_seconds += seconds
        tokens = self.saved_tokens.setdefault(usage.model, [0, 0])
        tokens[0] += usage.input_tokens
        tokens[1] += usage.output_tokens

    def merge(self, other: RunStats) -> None:
        """Add another process's totals to these."""
        self.counts.add(other.counts)
        self.missed_tests += other.missed_tests
        self.expired_tests += other.expired_tests
        self.written += [w for w in other.written if w not in self.written]
        self.saved_seconds += other.saved_seconds
        for model, (tokens_in, tokens_out) in other.saved_tokens.items():
            tokens = self.saved_tokens.setdefault(model, [0, 0])
            tokens[0] += tokens_in
            tokens[1] += tokens_out
        for path, slots in other.used.items():
            self.used.setdefault(path, []).extend(slots)
        self.owned += [p for p in other.owned if p not in self.owned]
        self.expired_entries += other.expired_entries
        self.folders += [f for f in other.folders if f not in self.folders]
        self.partial = self.partial or other.partial
        self.drift += other.drift
        self.add_outcomes(
            collected=other.collected,
            passed=other.passed,
            protected_paths=other.protected_paths,
            protected_folders=other.protected_folders,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain mapping (what xdist can carry)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["counts"] = self.counts.as_dict()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStats:
        """The inverse of :meth:`to_json`."""
        values = dict(data)
        values["counts"] = Counts(**data["counts"])
        return cls(**values)

    @property
    def input_tokens(self) -> int:
        """Input tokens saved, over all models."""
        return sum(t[0] for t in self.saved_tokens.values())

    @property
    def output_tokens(self) -> int:
        """Output tokens saved, over all models."""
        return sum(t[1] for t in self.saved_tokens.values())
