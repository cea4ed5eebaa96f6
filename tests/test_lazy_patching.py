"""A library is patched when the cache turns on, or as soon as it is imported after that."""

from __future__ import annotations

import pytest
from conftest import Suite

TESTS = """
import os, sys, pytest

@pytest.mark.llm_cache
def test_first():
    # Nothing imported requests, urllib3 or aiohttp: the cache did not import them either.
    print("IMPORTED", sorted(m for m in ("requests", "aiohttp") if m in sys.modules))

@pytest.mark.llm_cache
def test_imports_requests_late():
    import requests  # imported while the cache is on: patched as the import finishes

    body = {"model": "m", "messages": [{"role": "user", "content": "late"}]}
    response = requests.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
    print("STATUS", response.headers["x-llm-cache-status"])
"""


def test_a_library_imported_during_a_test_is_cached(suite: Suite) -> None:
    suite.write("test_late.py", TESTS)
    recorded = suite.pytester.runpytest_subprocess(
        "-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "--llm-cache=record", "-s"
    )
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*IMPORTED []*", "*STATUS MISS*"])
    assert suite.upstream() == 1
    replayed = suite.pytester.runpytest_subprocess(
        "-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "-s"
    )
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["*STATUS HIT*"])
    assert suite.upstream() == 1


@pytest.mark.parametrize("mode", ["record", "replay"])
def test_nothing_is_patched_for_a_run_without_cached_tests(suite: Suite, mode: str) -> None:
    suite.write(
        "test_plain.py",
        """
        import socket, sys

        def test_plain():
            import requests.adapters
            print("PATCHED", hasattr(requests.adapters.HTTPAdapter.send, "__llm_cache_original__"))
            print("SOCKET", hasattr(socket.socket.connect, "__llm_cache_original__"))
        """,
    )
    result = suite.pytester.runpytest_subprocess(
        "-p", "pytest_llmcache.plugin", f"--llm-cache={mode}", "-s"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PATCHED False*", "*SOCKET False*"])


def test_a_replayed_call_never_builds_the_transports_connection_pool(suite: Suite) -> None:
    pytest.importorskip("openai")
    suite.write(
        "test_pool.py",
        """
        import os, sys, openai, pytest

        @pytest.mark.llm_cache
        def test_chat():
            client = openai.OpenAI(api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1")
            reply = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "pool"}]
            )
            transport = client._client._transport
            print("POOL", "_pool" in vars(transport), "STACK", "httpcore2" in sys.modules)
            assert reply.choices[0].message.content == "Echo: pool"
            client.close()
        """,
    )
    args = ("-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "-s")
    recorded = suite.pytester.runpytest_subprocess(*args, "--llm-cache=record")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["*POOL True STACK True*"])  # built by the live call
    replayed = suite.pytester.runpytest_subprocess(*args)
    replayed.assert_outcomes(passed=1)
    # No SSL context, no connection pool, not even the import of the connection stack.
    replayed.stdout.fnmatch_lines(["*POOL False STACK False*"])


def test_pytest_imports_the_plugins_modules_from_their_bytecode(suite: Suite) -> None:
    # pytest marks every module of a plugin's distribution for assertion rewriting, as this
    # first plugin does for both packages; rewriting compiles each module from source.
    suite.write(
        "mark_for_rewrite.py",
        """
        import pytest

        pytest.register_assert_rewrite("pytest_llmcache", "helper_package")
        """,
    )
    suite.write("helper_package/__init__.py", "")
    suite.write("helper_package/tool.py", "CHECKED = True\n")
    suite.write(
        "test_loaders.py",
        """
        import sys

        import helper_package.tool
        import pytest


        @pytest.mark.llm_cache
        def test_loaders():
            names = ["helper_package.tool", "pytest_llmcache.plugin", "pytest_llmcache._engine"]
            for name in names:
                print("LOADER", name, type(sys.modules[name].__loader__).__name__)
        """,
    )
    result = suite.pytester.runpytest_subprocess(
        "-p", "mark_for_rewrite", "-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "-s"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*LOADER helper_package.tool AssertionRewritingHook",
            "*LOADER pytest_llmcache.plugin SourceFileLoader",
            "*LOADER pytest_llmcache._engine SourceFileLoader",
        ]
    )
