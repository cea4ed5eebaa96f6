"""``llm-cache merge-driver``: a real ``git merge`` of two branches that re-recorded one
cassette, and the driver's exit status on each kind of input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from cassette_samples import chat_entry, line_of, llm_cache, write_cassette
from conftest import Suite

from pytest_llmcache._cassette import Entry, parse

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0,
    reason="needs git",
)

SHARED = """
import os, httpx, pytest

def ask(content):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    # /counter: the n-th identical request is answered "(answer #n)".
    url = os.environ["FAKE_URL"] + "/counter/v1/chat/completions"
    return httpx.post(url, json=body).json()["choices"][0]["message"]["content"]

@pytest.mark.llm_cache(cassette="shared")
def test_one():
    ask("one")
    if os.environ.get("EXTRA_ONE"):
        ask("one more")

@pytest.mark.llm_cache(cassette="shared")
def test_two():
    ask("two")
    if os.environ.get("EXTRA_TWO"):
        ask("two more")
"""


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )


def committed(repo: Path, message: str) -> None:
    assert git(repo, "add", ".").returncode == 0
    done = git(repo, "commit", "-q", "-m", message)
    assert done.returncode == 0, done.stdout + done.stderr


def answers(path: Path) -> dict[str, str]:
    """Each recorded prompt's answer."""
    found = {}
    for entry in parse(path):
        prompt = entry.request["body"]["json"]["messages"][0]["content"]
        found[prompt] = entry.response["body"]["json"]["choices"][0]["message"]["content"]
    return found


def test_a_real_git_merge_of_two_re_recordings_keeps_every_entry(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = suite.path
    suite.write("test_merge.py", SHARED)
    suite.write(".gitattributes", "cassettes/**/*.yaml merge=llm-cache\n")
    suite.write(".gitignore", "__pycache__/\n.pytest_cache/\n")
    assert git(repo, "init", "-q", "-b", "main").returncode == 0
    driver = f"{sys.executable} -m pytest_llmcache merge-driver %O %A %B %P"
    assert git(repo, "config", "merge.llm-cache.driver", driver).returncode == 0
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    (cassette,) = (repo / "cassettes").rglob("*.yaml")
    committed(repo, "recordings")

    # One branch re-records test_one, which now makes one more call.
    assert git(repo, "checkout", "-q", "-b", "left").returncode == 0
    monkeypatch.setenv("EXTRA_ONE", "1")
    suite.run("--llm-cache=record", "test_merge.py::test_one").assert_outcomes(passed=1)
    committed(repo, "left: test_one asks once more")
    monkeypatch.delenv("EXTRA_ONE")

    # The other re-records both tests a second later: test_one's first answer changed on
    # both branches, this one's recording being the newer.
    assert git(repo, "checkout", "-q", "-b", "right", "main").returncode == 0
    time.sleep(1.1)
    monkeypatch.setenv("EXTRA_TWO", "1")
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    committed(repo, "right: everything re-recorded, test_two asks once more")

    assert git(repo, "checkout", "-q", "left").returncode == 0
    merged = git(repo, "merge", "--no-edit", "right")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "CONFLICT" not in merged.stdout
    assert "changed on both sides; kept the newer recording, theirs" in merged.stderr
    text = cassette.read_text()
    assert "<<<<<<<" not in text
    assert answers(cassette) == {
        "one": "Echo: one (answer #3)",  # right's, the newer
        "one more": "Echo: one more (answer #1)",  # left's
        "two": "Echo: two (answer #2)",  # right's
        "two more": "Echo: two more (answer #1)",  # right's
    }
    # The merged cassette replays every call of both branches offline.
    monkeypatch.setenv("EXTRA_ONE", "1")
    before = suite.upstream()
    suite.run("--llm-cache=replay").assert_outcomes(passed=2)
    assert suite.upstream() == before
    assert git(repo, "status", "--porcelain").stdout == ""


def entry(content: str, text: str, days_old: float = 0) -> Entry:
    reply = {"choices": [{"message": {"content": text}}]}
    return chat_entry(content, reply=reply, days_old=days_old)


def run_driver(
    tmp_path: Path, base: str, ours: str, theirs: str
) -> subprocess.CompletedProcess[str]:
    return llm_cache("merge-driver", base, ours, theirs, "tests/cassettes/c.yaml", cwd=tmp_path)


def test_only_their_change_is_taken_and_both_changes_keep_the_newer(tmp_path: Path) -> None:
    write_cassette(tmp_path / "O", entry("a", "base", 3), entry("b", "base", 3))
    write_cassette(tmp_path / "A", entry("a", "ours", 2), entry("b", "base", 3))
    write_cassette(tmp_path / "B", entry("a", "theirs", 1), entry("b", "theirs", 1))
    result = run_driver(tmp_path, "O", "A", "B")
    assert result.returncode == 0, result.stderr
    merged = answers(tmp_path / "A")
    assert merged == {"a": "theirs", "b": "theirs"}
    (line,) = result.stderr.splitlines()
    assert line.startswith("llm-cache merge-driver: tests/cassettes/c.yaml: entry ")
    assert "changed on both sides; kept the newer recording, theirs" in line


def test_our_newer_change_wins_and_an_empty_ancestor_is_a_union(tmp_path: Path) -> None:
    (tmp_path / "O").write_text("")  # added on both branches: git passes an empty ancestor
    write_cassette(tmp_path / "A", entry("a", "ours", 0), entry("x", "x"))
    write_cassette(tmp_path / "B", entry("a", "theirs", 1), entry("y", "y"))
    result = run_driver(tmp_path, "O", "A", "B")
    assert result.returncode == 0, result.stderr
    assert answers(tmp_path / "A") == {"a": "ours", "x": "x", "y": "y"}
    assert "kept the newer recording, ours" in result.stderr


def merged_calls(tmp_path: Path, ours: list[Entry], theirs: list[Entry]) -> list[str]:
    """Run the driver on an ancestor with one call to "a"; the merged (prompt, reply) pairs."""
    write_cassette(tmp_path / "O", entry("a", "1"))
    write_cassette(tmp_path / "A", *ours)
    write_cassette(tmp_path / "B", *theirs)
    assert run_driver(tmp_path, "O", "A", "B").returncode == 0
    return [
        e.request["body"]["json"]["messages"][0]["content"]
        + "="
        + e.response["body"]["json"]["choices"][0]["message"]["content"]
        for e in parse(tmp_path / "A")
    ]


def test_their_new_entries_stay_next_to_their_neighbours(tmp_path: Path) -> None:
    ours = [entry("a", "1"), entry("b", "b")]
    theirs = [entry("a", "1"), entry("c", "c"), entry("a", "2")]
    assert merged_calls(tmp_path, ours, theirs) == ["a=1", "c=c", "a=2", "b=b"]


def test_a_second_call_is_still_answered_second(tmp_path: Path) -> None:
    # Their second answer to "a" follows "y", which we moved before the first one.
    ours = [entry("y", "y"), entry("a", "1")]
    theirs = [entry("a", "1"), entry("y", "y"), entry("a", "2")]
    assert merged_calls(tmp_path, ours, theirs) == ["y=y", "a=1", "a=2"]


@pytest.mark.parametrize("side", ["O", "A", "B"])
def test_an_unreadable_side_leaves_ours_untouched_and_exits_1(tmp_path: Path, side: str) -> None:
    for name in "OAB":
        write_cassette(tmp_path / name, entry("a", name))
    good = (tmp_path / side).read_text()
    (tmp_path / side).write_text(good.replace("duration: 0.25", "duration: lots", 1))
    ours = (tmp_path / "A").read_bytes()
    result = run_driver(tmp_path, "O", "A", "B")
    assert result.returncode == 1
    assert (tmp_path / "A").read_bytes() == ours
    (line,) = result.stderr.splitlines()
    where = f"tests/cassettes/c.yaml:{line_of(good, '- key: ')}: entry"
    assert line.startswith("llm-cache merge-driver: error: "), line
    assert where in line


def test_a_missing_argument_is_a_usage_error(tmp_path: Path) -> None:
    result = llm_cache("merge-driver", "O", "A", cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: llm-cache merge-driver" in result.stderr


def test_help_mentions_the_git_recipe(tmp_path: Path) -> None:
    result = llm_cache("--help", cwd=tmp_path)
    assert "merge-driver" in result.stdout
    assert "diff" in result.stdout
