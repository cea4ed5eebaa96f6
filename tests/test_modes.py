"""The four modes as a user meets them: replay (default), record, auto and off."""

from __future__ import annotations

import pytest
from conftest import Suite

CHAT_TEST = """
import os
import httpx
import pytest

@pytest.mark.llm_cache
def test_chat():
    response = httpx.post(
        os.environ["FAKE_URL"] + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "{content}"}]},
        headers={"authorization": "Bearer test-token-1234"},
    )
    assert response.json()["choices"][0]["message"]["content"] == "Echo: {content}"
    print("STATUS", response.headers.get("x-llm-cache-status"))
"""


def chat_test(content: str = "hello") -> str:
    return CHAT_TEST.replace("{content}", content)


CASSETTE = "cassettes/test_chat/test_chat.yaml"


def test_replay_is_the_default_and_a_miss_fails_without_network(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    result = suite.run()
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "no recorded response for POST " + suite.provider.url + "/v1/chat/completions" in out
    assert CASSETTE in out
    assert "pytest --llm-cache=record 'test_chat.py::test_chat'" in out
    assert suite.upstream() == 0
    assert suite.cassettes() == {}


def test_record_then_replay_serves_the_stored_response(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    recorded = suite.run("--llm-cache=record", "-s")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["*STATUS MISS*"])
    assert suite.upstream() == 1
    assert list(suite.cassettes()) == [CASSETTE]

    replayed = suite.run("-s")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*STATUS HIT*"])
    assert suite.upstream() == 1, "replay must not reach the provider"


def test_auto_records_only_what_is_missing(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    before = suite.cassettes()[CASSETTE]
    suite.run("--llm-cache=auto").assert_outcomes(passed=1)
    assert suite.upstream() == 1
    assert suite.cassettes()[CASSETTE] == before

    suite.write("test_chat.py", chat_test("something new"))
    suite.run("--llm-cache=auto").assert_outcomes(passed=1)
    assert suite.upstream() == 2
    text = suite.cassettes()[CASSETTE]
    assert '"content": "hello"' in text, "auto keeps the entries it did not replace"
    assert '"content": "something new"' in text
    assert text.count("\n- key: ") == 2


def test_record_rewrites_the_cassette_with_this_runs_entries(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    suite.write("test_chat.py", chat_test("second version"))
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    text = suite.cassettes()[CASSETTE]
    assert '"content": "hello"' not in text
    assert '"content": "second version"' in text
    assert text.count("- key: ") == 1


def test_rerecording_identical_traffic_changes_no_byte(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    path = suite.path / CASSETTE
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert path.read_bytes() == first
    assert path.stat().st_mtime_ns == mtime, "an unchanged cassette is not rewritten"


def test_off_goes_to_the_network_and_writes_nothing(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    result = suite.run("--llm-cache=off", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*STATUS None*"])
    assert suite.upstream() == 1
    assert suite.cassettes() == {}
    assert "llm-cache" not in result.stdout.str().split("passed")[-1]


def test_a_test_without_calls_writes_no_file(suite: Suite) -> None:
    suite.write(
        "test_quiet.py",
        """
        import pytest

        @pytest.mark.llm_cache
        def test_nothing():
            assert True
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert suite.cassettes() == {}
    assert not (suite.path / "cassettes").exists()


@pytest.mark.parametrize(
    ("args", "env", "ini", "source"),
    [
        (["--llm-cache=replya"], None, None, "--llm-cache"),
        ([], "sometimes", None, "LLM_CACHE_MODE"),
        ([], None, "llm_cache_mode = rec", "llm_cache_mode"),
    ],
)
def test_an_unknown_mode_is_a_usage_error_listing_the_valid_ones(
    suite: Suite,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    ini: str | None,
    source: str,
) -> None:
    suite.write("test_chat.py", chat_test())
    if env is not None:
        monkeypatch.setenv("LLM_CACHE_MODE", env)
    if ini is not None:
        suite.write("pytest.ini", f"[pytest]\n{ini}\n")
    result = suite.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert source in err
    assert "choose one of: replay, record, auto, off" in err


def test_command_line_beats_environment_beats_ini(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_chat.py", chat_test())
    suite.write("pytest.ini", "[pytest]\nllm_cache_mode = off\n")
    monkeypatch.setenv("LLM_CACHE_MODE", "record")
    suite.run().assert_outcomes(passed=1)
    assert list(suite.cassettes()) == [CASSETTE], "the environment beat the ini file"
    suite.run("--llm-cache=replay").assert_outcomes(passed=1)
    assert suite.upstream() == 1, "the command line beat the environment"


def test_help_lists_the_options(suite: Suite) -> None:
    result = suite.run("--help")
    result.stdout.fnmatch_lines(
        [
            "*--llm-cache=MODE*",
            "*--llm-cache-strict*",
            "*--llm-cache-dir=DIR*",
            "*llm_cache_mode*",
            "*llm_cache_all_tests*",
        ]
    )


def test_markers_lists_llm_cache(suite: Suite) -> None:
    suite.run("--markers").stdout.fnmatch_lines(["@pytest.mark.llm_cache(ttl=None, cassette=*"])


def test_a_miss_has_a_public_name_in_the_short_summary(suite: Suite) -> None:
    suite.write("test_chat.py", chat_test())
    result = suite.run("-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED test_chat.py::test_chat - pytest_llmcache.ReplayMiss: *"])
    assert "_errors" not in result.stdout.str()
