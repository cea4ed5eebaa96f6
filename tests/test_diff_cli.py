"""``llm-cache diff``: two recordings compared entry by entry, on real files and a real git
repository; its exit status says whether anything but volatile fields changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cassette_samples import chat_entry, line_of, llm_cache, write_cassette

from pytest_llmcache._cassette import Entry

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True, check=False).returncode != 0,
    reason="needs git",
)


def answer(content: str, text: str, *, cid: str = "c1") -> Entry:
    """The recorded answer ``text`` to the prompt ``content`` (same key for the same prompt)."""
    reply = {"id": cid, "choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
    return chat_entry(content, reply=reply)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_two_cassettes_each_class_and_exit_1(tmp_path: Path) -> None:
    old = write_cassette(
        tmp_path / "old.yaml",
        answer("a", "same"),
        answer("b", "same", cid="c1"),
        answer("c", "first"),
        answer("gone", "x"),
    )
    new = write_cassette(
        tmp_path / "new.yaml",
        answer("a", "same"),
        answer("b", "same", cid="c2"),
        answer("c", "second"),
        answer("added", "y"),
    )
    result = llm_cache("diff", str(old), str(new), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "  volatile only: " in out
    assert "    only id" in out
    assert "  answer changed: " in out
    assert '    choices[0].message.content: "first" -> "second"' in out
    assert "  new: " in out
    assert "  removed: " in out
    assert out.splitlines()[-1] == (
        "5 entries in 1 cassette(s): 1 new, 1 unchanged, 1 volatile only, "
        "1 answer changed, 0 shape changed, 1 removed"
    )


def test_only_volatile_changes_exit_0(tmp_path: Path) -> None:
    old = write_cassette(tmp_path / "old.yaml", answer("a", "same", cid="c1"))
    new = write_cassette(tmp_path / "new.yaml", answer("a", "same", cid="c2"))
    result = llm_cache("diff", str(old), str(new), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 volatile only" in result.stdout


def test_json_for_scripts(tmp_path: Path) -> None:
    old = write_cassette(tmp_path / "a" / "x.yaml", answer("a", "first"))
    new = write_cassette(tmp_path / "b" / "x.yaml", answer("a", "second"))
    result = llm_cache("diff", "a", "b", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["counts"]["answer"] == 1
    (item,) = document["entries"]
    assert item["kind"] == "answer"
    assert item["cassette"] == str(Path("b") / "x.yaml")
    assert item["occurrence"] == 0
    assert item["diff"] == 'choices[0].message.content: "first" -> "second"'
    assert old.exists()
    assert new.exists()


def test_a_missing_side_is_all_new_or_all_removed(tmp_path: Path) -> None:
    write_cassette(tmp_path / "now" / "x.yaml", answer("a", "1"), answer("b", "2"))
    added = llm_cache("diff", "before", "now", "--json", cwd=tmp_path)
    assert added.returncode == 1
    assert json.loads(added.stdout)["counts"]["new"] == 2
    removed = llm_cache("diff", "now/x.yaml", "later/x.yaml", "--json", cwd=tmp_path)
    assert removed.returncode == 1
    assert json.loads(removed.stdout)["counts"]["removed"] == 2


def test_a_corrupt_side_is_named_with_its_line(tmp_path: Path) -> None:
    good = write_cassette(tmp_path / "good.yaml", answer("a", "1"))
    bad = tmp_path / "bad.yaml"
    text = good.read_text()
    bad.write_text(text.replace("duration: 0.25", "duration: lots", 1))
    result = llm_cache("diff", str(good), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"llm-cache: error: {bad}:{line_of(text, '- key: ')}"), line


def test_diff_against_a_git_revision(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    folder = repo / "tests" / "cassettes"
    write_cassette(folder / "chat.yaml", answer("a", "first"), answer("b", "kept"))
    write_cassette(folder / "old_only.yaml", answer("z", "z"))
    (repo / "other.yaml").parent.mkdir(parents=True, exist_ok=True)
    (repo / "tests" / "cassettes" / "compose.yaml").write_text("services: {}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "recordings")
    # The re-recording, in the working tree only: nothing is checked out to compare.
    write_cassette(folder / "chat.yaml", answer("a", "second"), answer("b", "kept"))
    (folder / "old_only.yaml").unlink()
    write_cassette(folder / "new_only.yaml", answer("n", "n"))

    result = llm_cache("diff", "tests/cassettes", "--git", "HEAD", "--json", cwd=repo)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["counts"] == {
        "new": 1,
        "unchanged": 1,
        "volatile": 0,
        "answer": 1,
        "shape": 0,
        "removed": 1,
    }
    kinds = {(Path(e["cassette"]).name, e["kind"]) for e in document["entries"]}
    assert ("chat.yaml", "answer") in kinds
    assert ("old_only.yaml", "removed") in kinds
    assert ("new_only.yaml", "new") in kinds
    assert git(repo, "status", "--porcelain", "--untracked-files=no").strip() == (
        "M tests/cassettes/chat.yaml\n D tests/cassettes/old_only.yaml"
    )

    one_file = llm_cache("diff", "tests/cassettes/chat.yaml", "--git", "HEAD", cwd=repo)
    assert one_file.returncode == 1
    assert '"first" -> "second"' in one_file.stdout

    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "refresh")
    assert llm_cache("diff", "tests/cassettes", "--git", "HEAD", cwd=repo).returncode == 0
    back = llm_cache("diff", "tests/cassettes", "--git", "HEAD~1", "--json", cwd=repo)
    assert json.loads(back.stdout)["counts"]["answer"] == 1


def test_a_corrupt_old_version_is_named_by_revision_and_line(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    cassette = write_cassette(repo / "c.yaml", answer("a", "1"))
    text = cassette.read_text()
    cassette.write_text(text.replace("duration: 0.25", "duration: lots", 1))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "broken")
    cassette.write_text(text)
    result = llm_cache("diff", "c.yaml", "--git", "HEAD", cwd=repo)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"llm-cache: error: HEAD:c.yaml:{line_of(text, '- key: ')}"), line


def test_a_revision_that_does_not_exist_is_one_line_and_exit_2(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_cassette(repo / "c.yaml", answer("a", "1"))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    result = llm_cache("diff", ".", "--git", "origin/nope", cwd=repo)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "llm-cache: error: diff: origin/nope: no such git revision (try: git fetch, or git log)"
    ]


def test_usage_mistakes_exit_2(tmp_path: Path) -> None:
    assert llm_cache("diff", "x.yaml", cwd=tmp_path).returncode == 2
    assert llm_cache("diff", "a", "b", "--git", "HEAD", cwd=tmp_path).returncode == 2
    neither = llm_cache("diff", "a.yaml", "b.yaml", cwd=tmp_path)
    assert neither.returncode == 2
    assert "neither a.yaml nor b.yaml exists" in neither.stderr
