"""TTL: expired entries are served and counted in replay, refreshed by auto, fatal in strict."""

from __future__ import annotations

import re

import pytest
from conftest import Suite

TEST = """
import os, httpx, pytest

@pytest.mark.llm_cache(ttl="1h")
def test_chat():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hi"
"""
CASSETTE = "cassettes/test_ttl_case/test_chat.yaml"


@pytest.fixture
def expired(suite: Suite) -> Suite:
    """A suite whose only entry was recorded two days ago with a one-hour TTL."""
    suite.write("test_ttl_case.py", TEST)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    path = suite.path / CASSETTE
    text = path.read_text()
    assert "ttl: 3600" in text
    path.write_text(re.sub(r"recorded_at: '[^']+'", "recorded_at: '2020-01-01T00:00:00Z'", text))
    suite.provider.reset()
    return suite


def test_replay_serves_an_expired_entry_and_counts_it(expired: Suite) -> None:
    result = expired.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*mode replay: 1 replayed, 0 recorded, 0 missed, 1 expired*",
            "*refresh them: pytest --llm-cache=auto*",
        ]
    )
    assert expired.upstream() == 0


def test_auto_rerecords_an_expired_entry(expired: Suite) -> None:
    result = expired.run("--llm-cache=auto")
    result.assert_outcomes(passed=1)
    assert expired.upstream() == 1
    text = expired.cassettes()[CASSETTE]
    assert "2020-01-01" not in text
    assert text.count("- key:") == 1
    expired.run("--llm-cache-strict").assert_outcomes(passed=1)


def test_strict_fails_on_an_expired_entry(expired: Suite) -> None:
    result = expired.run("--llm-cache-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*expired entry for POST*--llm-cache-strict is on",
            "*refresh it: pytest --llm-cache=auto 'test_ttl_case.py::test_chat'*",
        ]
    )
    assert expired.upstream() == 0


def test_strict_from_the_ini_file(expired: Suite) -> None:
    expired.write("pytest.ini", "[pytest]\nllm_cache_strict = true\n")
    expired.run().assert_outcomes(failed=1)


def test_a_fresh_entry_is_not_expired(suite: Suite) -> None:
    suite.write("test_ttl_case.py", TEST)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    suite.run("--llm-cache-strict").assert_outcomes(passed=1)


def test_ini_ttl_is_the_default_for_new_entries(suite: Suite) -> None:
    suite.write("test_ttl_case.py", TEST.replace('(ttl="1h")', ""))
    suite.write("pytest.ini", "[pytest]\nllm_cache_ttl = 7d\n")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert "ttl: 604800" in suite.cassettes()[CASSETTE]


def test_a_bad_ini_ttl_is_a_usage_error(suite: Suite) -> None:
    suite.write("test_ttl_case.py", TEST)
    suite.write("pytest.ini", "[pytest]\nllm_cache_ttl = a while\n")
    result = suite.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "llm_cache_ttl: ttl 'a while' is not a duration" in result.stderr.str()
