"""Unused entries: reported, fatal under --llm-cache-strict, removed by --llm-cache-prune."""

from __future__ import annotations

import pytest
from conftest import Suite

TESTS = """
import os, httpx, pytest

def ask(content):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    return httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)

@pytest.mark.llm_cache
def test_one():
    ask("kept")
    if not os.environ.get("SHRUNK"):
        ask("dropped later")

@pytest.mark.llm_cache
def test_two():
    ask("two")
"""


@pytest.fixture
def shrunk(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> Suite:
    """A suite recorded with three calls, now making two: one entry is left unused."""
    suite.write("test_fresh.py", TESTS)
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    monkeypatch.setenv("SHRUNK", "1")
    return suite


def entries(suite: Suite) -> dict[str, int]:
    return {name: text.count("- key: ") for name, text in suite.cassettes().items()}


def test_unused_entries_are_counted_and_listed(shrunk: Suite) -> None:
    result = shrunk.run()
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["mode replay: 2 replayed, 0 recorded, 0 missed, 0 expired, 1 unused"]
    )
    result.stdout.fnmatch_lines(
        [
            "unused entries (no passing test replayed them):",
            "  cassettes/test_fresh/test_one.yaml *",
            "remove them: pytest --llm-cache-prune (after a complete run)",
        ]
    )


def test_strict_fails_the_run_on_unused_entries(shrunk: Suite) -> None:
    result = shrunk.run("--llm-cache-strict")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*1 unused*",
            "  cassettes/test_fresh/test_one.yaml *",
            "--llm-cache-strict: 1 unused entries fail the run",
        ]
    )


def test_prune_removes_unused_entries_and_orphan_cassettes(shrunk: Suite) -> None:
    orphan = shrunk.path / "cassettes/test_fresh/test_deleted_long_ago.yaml"
    # The cassette of a test deleted long ago: its entries name a test no longer collected.
    text = (shrunk.path / "cassettes/test_fresh/test_two.yaml").read_text()
    assert "test: test_fresh.py::test_two" in text
    orphan.write_text(text.replace("::test_two", "::test_deleted_long_ago"))
    foreign = shrunk.path / "cassettes/test_fresh/notes.yaml"
    foreign.write_text("not: a cassette\n")
    result = shrunk.run("--llm-cache-prune")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "pruned 1 unused entries from cassettes/test_fresh/test_one.yaml",
            "deleted cassettes/test_fresh/test_deleted_long_ago.yaml",
        ]
    )
    assert entries(shrunk) == {
        "cassettes/test_fresh/notes.yaml": 0,
        "cassettes/test_fresh/test_one.yaml": 1,
        "cassettes/test_fresh/test_two.yaml": 1,
    }
    assert foreign.read_text() == "not: a cassette\n", "only our own cassettes are deleted"
    after = shrunk.run("--llm-cache-strict")
    assert after.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    "args",
    [["-k", "test_one"], ["test_fresh.py::test_one"], ["-x", "-p", "no:cacheprovider"]],
    ids=["keyword", "node-id", "failure"],
)
def test_prune_never_runs_after_a_partial_run(
    shrunk: Suite, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    if "-x" in args:
        shrunk.write(
            "test_zz_failing.py",
            "import pytest\n\n@pytest.mark.llm_cache\ndef test_fails():\n    assert False\n",
        )
    before = shrunk.cassettes()
    shrunk.run("--llm-cache-prune", *args)
    assert shrunk.cassettes() == before


def test_prune_works_with_workers(shrunk: Suite) -> None:
    result = shrunk.run("-p", "xdist", "-n", "2", "--llm-cache-prune")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["pruned 1 unused entries from cassettes/test_fresh/test_one.yaml"])
    assert entries(shrunk)["cassettes/test_fresh/test_one.yaml"] == 1
