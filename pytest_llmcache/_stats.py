"""What a run did, in a form that xdist workers can send to the controller and be added up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._usage import Usage

__all__ = ["Counts", "RunStats"]

# Plain classes rather than dataclasses: every run imports this module, and generating a
# dataclass's methods costs more than the rest of the module's import.


class Counts:
    """What happened to the calls of a test, or of a whole run."""

    __slots__ = ("expired", "missed", "passed_through", "recorded", "replayed")

    def __init__(
        self,
        replayed: int = 0,
        recorded: int = 0,
        missed: int = 0,
        expired: int = 0,
        passed_through: int = 0,
    ) -> None:
        self.replayed = replayed
        self.recorded = recorded
        self.missed = missed
        self.expired = expired
        self.passed_through = passed_through
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
        return {
            "replayed": self.replayed,
            "recorded": self.recorded,
            "missed": self.missed,
            "expired": self.expired,
            "passed_through": self.passed_through,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"Counts({counts})"


class RunStats:
    """The totals of a run; every field survives a JSON round trip and adds up with ``merge``."""

    __slots__ = (
        "collected",
        "counts",
        "drift",
        "expired_entries",
        "expired_tests",
        "folders",
        "missed_tests",
        "owned",
        "partial",
        "passed",
        "protected_folders",
        "protected_paths",
        "saved_seconds",
        "saved_tokens",
        "used",
        "written",
    )

    def __init__(self) -> None:
        self.counts = Counts()
        self.missed_tests: list[str] = []
        self.expired_tests: list[str] = []
        self.written: list[str] = []
        self.saved_seconds = 0.0
        self.saved_tokens: dict[str, list[int]] = {}
        """Per model: input and output tokens the replays did not spend."""
        self.used: dict[str, list[Any]] = {}
        """Per cassette: the slots replayed or recorded by passing tests, each as a key and
        its occurrence, one after the other (one list per file: a run of thousands of calls
        leaves no object behind for each, to be walked by every garbage collection)."""
        self.owned: list[str] = []
        """Cassettes that tests of this run read or wrote."""
        self.expired_entries: list[list[str]] = []
        """``[cassette, key, test]`` of each expired entry replayed."""
        self.folders: list[str] = []
        """Cassette folders of the collected test modules (for ``--llm-cache-prune``)."""
        self.partial = False
        """Whether some collected tests were deselected: a partial run prunes nothing."""
        self.collected: list[str] = []
        """Node ids of the cached tests collected."""
        self.passed: list[str] = []
        """Node ids of the cached tests that passed."""
        self.protected_paths: list[str] = []
        """Cassettes of tests that did not pass (skipped, xfailed, failed): never judged unused."""
        self.protected_folders: list[str] = []
        """Cassette folders where such a test's cassette cannot be known: no file deleted there."""
        self.drift: list[list[str]] = []
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
        data = {name: getattr(self, name) for name in self.__slots__}
        data["counts"] = self.counts.as_dict()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStats:
        """The inverse of :meth:`to_json`."""
        stats = cls()
        for name, value in data.items():
            setattr(stats, name, value)  # an unknown name raises: there is no slot for it
        stats.counts = Counts(**data["counts"])
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunStats):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"RunStats({fields})"

    @property
    def input_tokens(self) -> int:
        """Input tokens saved, over all models."""
        return sum(t[0] for t in self.saved_tokens.values())

    @property
    def output_tokens(self) -> int:
        """Output tokens saved, over all models."""
        return sum(t[1] for t in self.saved_tokens.values())
