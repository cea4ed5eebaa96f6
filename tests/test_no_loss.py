"""No recording is lost: partial re-records, interrupted runs, parallel calls, prune and strict."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Suite

SHARED = """
import os, httpx, pytest

pytestmark = pytest.mark.llm_cache(cassette="shared")

def ask(content):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    url = os.environ["FAKE_URL"] + os.environ.get("PREFIX", "") + "/v1/chat/completions"
    return httpx.post(url, json=body).json()["choices"][0]["message"]["content"]

@pytest.mark.parametrize("n", range(40))
def test_call(n):
    print("ANSWER", n, ask(f"question {n}"))
"""


def _answers(result: pytest.RunResult) -> dict[str, str]:
    return dict(re.findall(r"ANSWER (\d+) (.*)", result.stdout.str()))


def _keys(text: str) -> int:
    return text.count("- key: ")


def test_rerecording_part_of_a_shared_cassette_keeps_the_rest(suite: Suite) -> None:
    suite.write("test_shared.py", SHARED)
    suite.run("--llm-cache=record").assert_outcomes(passed=40)
    (path, text) = next(iter(suite.cassettes().items()))
    assert _keys(text) == 40
    assert text.count("test: test_shared.py::test_call[") == 40

    # Re-record 13 of the 40.
    rerecorded = suite.run("--llm-cache=record", "-k", "test_call and 3", "-s")
    rerecorded.assert_outcomes(passed=13, deselected=27)
    text = suite.cassettes()[path]
    assert _keys(text) == 40, "the entries of the 27 deselected tests are kept"

    before = suite.upstream()
    replayed = suite.run("-s")
    replayed.assert_outcomes(passed=40)
    assert suite.upstream() == before


def test_rerecording_one_test_replaces_only_its_own_entries(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider answers the same question differently each time it is asked.
    monkeypatch.setenv("PREFIX", "/counter")
    suite.write("test_shared.py", SHARED)
    suite.run("--llm-cache=record").assert_outcomes(passed=40)
    path = next(iter(suite.cassettes()))
    first = _answers(suite.run("-s"))
    assert first["7"].endswith("(answer #1)")
    for _ in range(2):
        suite.run("--llm-cache=record", "test_shared.py::test_call[7]").assert_outcomes(passed=1)
    after = suite.cassettes()[path]
    assert _keys(after) == 40
    replayed = _answers(suite.run("-s"))
    assert replayed["7"].endswith("(answer #3)"), "test 7 was recorded again, twice"
    assert {k: v for k, v in replayed.items() if k != "7"} == {
        k: v for k, v in first.items() if k != "7"
    }
    # Entries stay where they were: re-recording moves nothing in the file.
    order = re.findall(r"test: (test_shared.py::test_call\[\d+\])", after)
    assert order == [f"test_shared.py::test_call[{n}]" for n in range(40)]


SAME_QUESTION = """
import os, httpx, pytest

pytestmark = pytest.mark.llm_cache(cassette="shared")

def ask():
    body = {"model": "m", "messages": [{"role": "user", "content": "the same question"}]}
    url = os.environ["FAKE_URL"] + os.environ.get("PREFIX", "") + "/v1/chat/completions"
    return httpx.post(url, json=body).json()["choices"][0]["message"]["content"]

def test_one():
    print("ANSWER 1", " | ".join(ask() for _ in range(int(os.environ.get("ONE", "1")))))

def test_two():
    print("ANSWER 2", ask())
"""


@pytest.mark.parametrize("calls", [1, 2])
def test_tests_sharing_a_cassette_keep_their_own_answers_to_the_same_question(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, calls: int
) -> None:
    # The provider answers the same question differently each time it is asked.
    monkeypatch.setenv("PREFIX", "/counter")
    monkeypatch.setenv("ONE", str(calls))
    suite.write("test_same.py", SAME_QUESTION)
    recorded = _answers(suite.run("--llm-cache=record", "-s"))
    assert recorded["1"].count("(answer #") == calls
    assert recorded["2"].endswith(f"(answer #{calls + 1})")
    (path, text) = next(iter(suite.cassettes().items()))
    assert _keys(text) == calls + 1, "each test's answers are kept"
    # Each replays its own, and every entry counts as used (none for strict to fail on).
    replayed = suite.run("-s", "--llm-cache-strict")
    replayed.assert_outcomes(passed=2)
    assert replayed.ret == pytest.ExitCode.OK
    assert _answers(replayed) == recorded
    # Re-recording one of them replaces its own answers only.
    suite.run("--llm-cache=record", "test_same.py::test_two").assert_outcomes(passed=1)
    after = _answers(suite.run("-s"))
    assert after["1"] == recorded["1"]
    assert after["2"].endswith(f"(answer #{calls + 2})")
    assert _keys(suite.cassettes()[path]) == calls + 1


def test_the_same_exchange_recorded_by_two_tests_sharing_a_cassette_is_stored_once(
    suite: Suite,
) -> None:
    suite.write("test_same.py", SAME_QUESTION)
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    (text,) = suite.cassettes().values()
    assert _keys(text) == 1
    replayed = suite.run("--llm-cache-strict")
    replayed.assert_outcomes(passed=2)
    assert replayed.ret == pytest.ExitCode.OK


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupting_a_record_run_keeps_what_it_did_not_reach(suite: Suite) -> None:
    suite.write("test_shared.py", SHARED)
    suite.run("--llm-cache=record").assert_outcomes(passed=40)
    suite.write(
        "conftest.py",
        """
        import os, time

        def pytest_runtest_setup(item):
            if os.environ.get("SLOW") and "[5]" in item.nodeid:
                print("REACHED", flush=True)
                time.sleep(60)
        """,
    )
    env = {**os.environ, "SLOW": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--llm-cache=record", "-p", "no:cacheprovider", "-s"],
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        seen = b""
        while b"REACHED" not in seen and time.monotonic() < deadline:
            seen += process.stdout.readline()
        assert b"REACHED" in seen, seen.decode()
        process.send_signal(signal.SIGINT)
        output = seen.decode() + process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    (text,) = suite.cassettes().values()
    assert _keys(text) == 40
    before = suite.upstream()
    suite.run().assert_outcomes(passed=40)
    assert suite.upstream() == before


PARALLEL = """
import asyncio, os, httpx, pytest
from concurrent.futures import ThreadPoolExecutor

URL = os.environ["FAKE_URL"] + "/reverse/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "vote"}]}

@pytest.mark.llm_cache
def test_tasks():
    async def main():
        async with httpx.AsyncClient() as client:
            async def one():
                response = await client.post(URL, json=BODY)
                return response.json()["choices"][0]["message"]["content"]
            return await asyncio.gather(*(one() for _ in range(6)))
    print("ANSWERS", asyncio.run(main()))

@pytest.mark.llm_cache
def test_threads():
    def one(_):
        response = httpx.post(URL, json=BODY)
        return response.json()["choices"][0]["message"]["content"]
    with ThreadPoolExecutor(6) as pool:
        print("ANSWERS", list(pool.map(one, range(6))))
"""


@pytest.mark.parametrize("name", ["test_tasks", "test_threads"])
def test_identical_calls_in_flight_at_once_are_all_kept_in_call_order(
    suite: Suite, name: str
) -> None:
    suite.write("test_parallel.py", PARALLEL)
    recorded = suite.run("--llm-cache=record", "-s", f"test_parallel.py::{name}")
    recorded.assert_outcomes(passed=1)
    answers = re.findall(r"ANSWERS (.*)", recorded.stdout.str())[0]
    numbers = sorted(int(n) for n in re.findall(r"answer #(\d)", answers))
    assert numbers == [1, 2, 3, 4, 5, 6], answers
    (text,) = suite.cassettes().values()
    assert _keys(text) == 6
    assert sorted(int(n) for n in re.findall(r"answer #(\d)", text)) == numbers
    before = suite.upstream()
    replayed = suite.run("-s", f"test_parallel.py::{name}")
    replayed.assert_outcomes(passed=1)
    assert suite.upstream() == before
    if name == "test_tasks":
        # Each call gets the answer its place got when recording.
        assert re.findall(r"ANSWERS (.*)", replayed.stdout.str())[0] == answers
    else:
        # Threads race to their place; all six answers are served, none twice.
        again = re.findall(r"ANSWERS (.*)", replayed.stdout.str())[0]
        assert sorted(re.findall(r"answer #(\d)", again)) == [str(n) for n in numbers]


OUTCOMES = """
import os, httpx, pytest

def ask(content):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    return httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)

@pytest.mark.llm_cache
def test_passes():
    ask("pass")

@pytest.mark.llm_cache
@pytest.mark.skipif(bool(os.environ.get("LATER")), reason="skipped now")
def test_skipped_later():
    ask("skipped")

@pytest.mark.llm_cache
def test_xfails():
    ask("xfail one")
    if os.environ.get("LATER"):
        pytest.xfail("known bug")
    ask("xfail two")

@pytest.mark.llm_cache(cassette="shared")
def test_shared_runs():
    ask("shared runs")

@pytest.mark.llm_cache(cassette="shared")
@pytest.mark.skipif(bool(os.environ.get("LATER")), reason="skipped now")
def test_shared_skipped_later():
    ask("shared skipped")
"""


def test_prune_and_strict_leave_skipped_and_xfailed_tests_alone(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_outcomes.py", OUTCOMES)
    suite.run("--llm-cache=record").assert_outcomes(passed=5)
    before = suite.cassettes()
    assert len(before) == 4
    monkeypatch.setenv("LATER", "1")
    pruned = suite.run("--llm-cache-prune")
    pruned.assert_outcomes(passed=2, skipped=2, xfailed=1)
    assert pruned.ret == pytest.ExitCode.OK
    assert suite.cassettes() == before, pruned.stdout.str()
    strict = suite.run("--llm-cache-strict")
    strict.assert_outcomes(passed=2, skipped=2, xfailed=1)
    assert strict.ret == pytest.ExitCode.OK, strict.stdout.str()
    assert "unused entries" not in strict.stdout.str()


def test_lock_files_are_private_and_do_not_pile_up(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # for xdist's workers
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # this process has read it already
    suite.write("test_shared.py", SHARED)
    suite.run("--llm-cache=record", "-p", "xdist", "-n", "2").assert_outcomes(passed=40)
    (folder,) = temp.iterdir()
    assert folder.name.startswith("pytest-llmcache-")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert list(folder.iterdir()) == [], "no lock file is left behind"


def test_a_lock_folder_of_someone_else_is_a_clear_error(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))  # for xdist's workers
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # this process has read it already
    getuid = getattr(os, "getuid", None)
    name = f"pytest-llmcache-{getuid() if getuid else os.getlogin()}"
    (temp / name).write_text("squatted")
    suite.write("test_shared.py", SHARED.replace("range(40)", "range(1)"))
    result = suite.run("--llm-cache=record")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines([f"*cannot lock cassette*{name} is not a folder of yours*"])
    assert suite.cassettes() == {}
