"""The terminal summary, the plugin's entry point and the normalize hook."""

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
    ask("one"); ask("two")

@pytest.mark.llm_cache
def test_two():
    ask("three")
    if os.environ.get("EXTRA"):
        ask("never recorded")
"""


def test_the_summary_counts_and_names_the_fix(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_sum.py", TESTS)
    recorded = suite.run("--llm-cache=record")
    recorded.stdout.fnmatch_lines(
        [
            "*= llm-cache =*",
            "mode record: 0 replayed, 3 recorded, 0 missed, 0 expired",
            "cassettes written: 2",
        ]
    )
    monkeypatch.setenv("EXTRA", "1")
    replayed = suite.run()
    replayed.assert_outcomes(passed=1, failed=1)
    replayed.stdout.fnmatch_lines(
        [
            "*= llm-cache =*",
            "mode replay: 3 replayed, 0 recorded, 1 missed, 0 expired, 0 unused",
            "saved: * tokens (* in, * out), * s of calls",
            "missed in 1 test(s):",
            "  test_sum.py::test_two",
            "fix: pytest --llm-cache=auto 'test_sum.py::test_two'",
        ]
    )


def test_no_summary_when_nothing_was_cached(suite: Suite) -> None:
    suite.write("test_plain.py", "def test_plain():\n    pass\n")
    result = suite.run()
    assert "llm-cache =" not in result.stdout.str()
    result.stdout.fnmatch_lines(["llm-cache: mode=replay"])


def test_pytest_finds_the_plugin_through_its_entry_point(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    suite.write("test_sum.py", TESTS)
    result = suite.pytester.runpytest_subprocess("--llm-cache=record", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*llmcache-*", "mode record: 0 replayed, 3 recorded*"])


def test_the_normalize_hook_changes_the_key(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.write(
        "conftest.py",
        """
        import dataclasses, re

        def pytest_llm_cache_normalize_request(request):
            url = re.sub(r"ts=\\d+", "ts=0", request.url)
            return dataclasses.replace(request, url=url)
        """,
    )
    suite.write(
        "test_ts.py",
        """
        import os, time, httpx, pytest

        @pytest.mark.llm_cache
        def test_timestamped():
            url = os.environ["FAKE_URL"] + "/v1/models?ts=" + os.environ["TS"]
            assert httpx.get(url).status_code == 200
        """,
    )
    monkeypatch.setenv("TS", "1700000000")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "ts=0" in text
    monkeypatch.setenv("TS", "1800000000")
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1
