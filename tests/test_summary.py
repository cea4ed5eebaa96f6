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


FOLDER_HOOK = """
import dataclasses, json

def pytest_llm_cache_normalize_request(request):
    data = json.loads(request.body)
    data.pop("seed", None)
    return dataclasses.replace(request, body=json.dumps(data).encode())
"""

SEEDED = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_{name}(llm_fixture):
    body = {{"model": "m", "input": "{name}", "seed": int(os.environ["SEED"])}}
    assert httpx.post(os.environ["FAKE_URL"] + "/v1/embeddings", json=body).status_code == 200
"""

MODULE_FIXTURE = """
import os, httpx, pytest

@pytest.fixture(scope="module")
def llm_fixture():
    body = {"model": "m", "input": "fixture", "seed": int(os.environ["SEED"])}
    assert httpx.post(os.environ["FAKE_URL"] + "/v1/embeddings", json=body).status_code == 200
"""


def test_a_normalize_hook_in_a_folder_applies_to_that_folder_only(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conftest's hook is for the tests (and fixtures) of its folder, as pytest scopes any
    hook: the other folder's keys do not depend on whether this one was collected."""
    suite.write("a/conftest.py", FOLDER_HOOK + MODULE_FIXTURE)
    suite.write("a/test_a.py", SEEDED.format(name="a"))
    suite.write("b/conftest.py", MODULE_FIXTURE)
    suite.write("b/test_b.py", SEEDED.format(name="b"))
    monkeypatch.setenv("SEED", "1")
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    texts = suite.cassettes()
    in_a = [t for name, t in texts.items() if name.startswith("a/")]
    in_b = [t for name, t in texts.items() if name.startswith("b/")]
    assert len(in_a) == len(in_b) == 2  # each folder: its test's cassette and its fixture's
    assert all('"seed"' not in t for t in in_a)
    assert all('"seed": 1' in t for t in in_b)
    # b's tests replay the requests recorded for them, with or without a/ collected.
    suite.run("b").assert_outcomes(passed=1)
    suite.run().assert_outcomes(passed=2)
    # A changed seed is a new request in b/ (both its calls miss), and none in a/.
    monkeypatch.setenv("SEED", "2")
    result = suite.run()
    result.assert_outcomes(passed=1, errors=1)
    assert suite.upstream() == 4


def test_the_fix_command_for_more_misses_than_it_lists_runs_the_whole_suite(
    suite: Suite,
) -> None:
    """Naming only the first ten of many missed tests would leave the others missing."""
    suite.write(
        "test_many.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        @pytest.mark.parametrize("n", range(11))
        def test_call(n):
            httpx.post(os.environ["FAKE_URL"] + "/v1/embeddings", json={"input": str(n)})
        """,
    )
    result = suite.run()
    result.assert_outcomes(failed=11)
    result.stdout.fnmatch_lines(["missed in 11 test(s):", "fix: pytest --llm-cache=auto"])
    fix = [line for line in result.stdout.lines if line.startswith("fix: ")]
    assert fix == ["fix: pytest --llm-cache=auto"]
    suite.run("--llm-cache=auto").assert_outcomes(passed=11)
    suite.run().assert_outcomes(passed=11)


def test_a_normalize_hook_that_returns_no_request_fails_the_test_naming_the_hook(
    suite: Suite,
) -> None:
    suite.write(
        "conftest.py",
        """
        def pytest_llm_cache_normalize_request(request):
            return {"url": request.url}
        """,
    )
    suite.write(
        "test_bad_hook.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_call():
            try:
                httpx.get(os.environ["FAKE_URL"] + "/v1/models")
            except Exception:
                pass  # the failure is not the SDK's to catch
        """,
    )
    result = suite.run("--llm-cache=record")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*pytest_llm_cache_normalize_request returned dict, not a Request*"]
    )
    assert suite.upstream() == 0


def test_header_names_a_normalize_hook_adds_are_matched_in_any_case(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write(
        "conftest.py",
        """
        import dataclasses, os

        def pytest_llm_cache_normalize_request(request):
            headers = (*request.headers, ("X-Tenant", os.environ["TENANT"]))
            return dataclasses.replace(request, headers=headers)
        """,
    )
    suite.write(
        "test_tenant.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache(match_headers=["x-tenant"])
        def test_call():
            assert httpx.get(os.environ["FAKE_URL"] + "/v1/models").status_code == 200
        """,
    )
    monkeypatch.setenv("TENANT", "one")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "x-tenant: one" in text
    suite.run().assert_outcomes(passed=1)
    monkeypatch.setenv("TENANT", "two")
    suite.run().assert_outcomes(failed=1)
