"""The run's totals: counts that add up, stats that cross from xdist workers intact, audits."""

from __future__ import annotations

import json

import pytest

from pytest_llmcache._audit import Audit
from pytest_llmcache._stats import Counts, RunStats

NAMES = ["replayed", "recorded", "missed", "expired", "passed_through"]


def test_counts_add_up_field_by_field() -> None:
    total = Counts(*range(1, len(NAMES) + 1))
    total.add(Counts(*range(10, 10 * len(NAMES) + 1, 10)))
    assert total.as_dict() == {name: 11 * (n + 1) for n, name in enumerate(NAMES)}
    assert [getattr(total, name) for name in NAMES] == [11, 22, 33, 44, 55]


def test_counts_compare_and_print_by_value() -> None:
    assert Counts(recorded=2) == Counts(0, 2)
    assert Counts(recorded=2) != Counts(replayed=2)
    assert repr(Counts(missed=1)) == (
        "Counts(replayed=0, recorded=0, missed=1, expired=0, passed_through=0)"
    )
    with pytest.raises(TypeError, match="unhashable"):
        hash(Counts())  # mutable: a set of counts would lose track of them


def filled() -> RunStats:
    """Stats with every field set to something other than its default."""
    stats = RunStats()
    stats.counts.add(Counts(1, 2, 3, 4, 5))
    stats.missed_tests.append("t.py::miss")
    stats.expired_tests.append("t.py::old")
    stats.written.append("c/w.yaml")
    stats.saved_seconds = 1.5
    stats.saved_tokens["gpt-x"] = [7, 3]
    stats.used["c/u.yaml"] = ["key", 0]
    stats.owned.append("c/o.yaml")
    stats.expired_entries.append(["c/e.yaml", "key", "t.py::old"])
    stats.folders.append("c")
    stats.partial = True
    stats.collected.append("t.py::a")
    stats.passed.append("t.py::a")
    stats.protected_paths.append("c/p.yaml")
    stats.protected_folders.append("d")
    stats.drift.append(["t.py::a", "c/w.yaml", "key", "answer", "x: 1 -> 2"])
    return stats


def test_every_field_survives_the_json_round_trip() -> None:
    stats = filled()
    data = stats.to_json()
    assert all(value not in (0, 0.0, False, [], {}) for value in data.values()), data
    back = RunStats.from_json(json.loads(json.dumps(data)))
    assert back == stats
    assert back.to_json() == data
    assert back.counts == Counts(1, 2, 3, 4, 5)
    assert back != RunStats()


def test_an_unknown_field_from_a_worker_is_refused() -> None:
    with pytest.raises(AttributeError, match="surprise"):
        RunStats.from_json({**RunStats().to_json(), "surprise": 1})


def test_fresh_stats_share_no_list_or_dict() -> None:
    filled()  # changes only its own stats
    assert RunStats() == RunStats.from_json(json.loads(json.dumps(RunStats().to_json())))
    fresh = RunStats().to_json()
    assert fresh.pop("counts") == Counts().as_dict()
    assert all(value in (0.0, False, [], {}) for value in fresh.values()), fresh


def test_merge_adds_another_process_totals() -> None:
    one = filled()
    one.merge(RunStats.from_json(json.loads(json.dumps(filled().to_json()))))
    assert one.counts == Counts(2, 4, 6, 8, 10)
    assert one.missed_tests == ["t.py::miss", "t.py::miss"]
    assert one.written == ["c/w.yaml"]  # a file written by both is listed once
    assert one.saved_seconds == 3.0
    assert one.saved_tokens == {"gpt-x": [14, 6]}
    assert one.used == {"c/u.yaml": ["key", 0, "key", 0]}
    assert one.collected == ["t.py::a"]
    assert one.passed == ["t.py::a", "t.py::a"]
    assert (one.input_tokens, one.output_tokens) == (14, 6)
    assert "saved_seconds=3.0" in repr(one)


def test_audits_share_no_list() -> None:
    first = Audit()
    first.unused.append(("c.yaml", "key"))
    first.errors.append("could not prune c.yaml")
    assert Audit() == Audit([], [], [], [])
    assert Audit() != first
    assert first == Audit(unused=[("c.yaml", "key")], errors=["could not prune c.yaml"])
    assert repr(Audit(deleted=["d.yaml"])) == (
        "Audit(unused=[], pruned=[], deleted=['d.yaml'], errors=[])"
    )
