"""``pytest_llmcache.cassette``: a cassette for a script, a function, or a block in a test."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import Suite

SCRIPT = """
import asyncio, logging, os, sys
import httpx
import pytest_llmcache

logging.basicConfig(level=logging.INFO, format="%(message)s")
URL = os.environ["FAKE_URL"] + "/v1/chat/completions"


def ask(content):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    return httpx.post(URL, json=body).json()["choices"][0]["message"]["content"]


@pytest_llmcache.cassette("evals/cassettes/decorated.yaml")
def decorated():
    return ask("from a decorated function")


@pytest_llmcache.cassette("evals/cassettes/async.yaml")
async def decorated_async():
    async with httpx.AsyncClient() as client:
        body = {"model": "m", "messages": [{"role": "user", "content": "async"}]}
        response = await client.post(URL, json=body)
        return response.json()["choices"][0]["message"]["content"]


with pytest_llmcache.cassette("evals/cassettes/run.yaml", ttl="30d"):
    print("ANSWER", ask("evaluate this"))
    with pytest_llmcache.cassette("evals/cassettes/inner.yaml"):
        print("INNER", ask("nested"))
    print("AGAIN", ask("evaluate this too"))
print("DECORATED", decorated())
print("ASYNC", asyncio.run(decorated_async()))
print("AFTER", httpx.get(os.environ["FAKE_URL"] + "/v1/models").status_code)
if os.environ.get("MISS"):
    try:
        with pytest_llmcache.cassette("evals/cassettes/run.yaml"):
            ask("never recorded")
    except pytest_llmcache.CacheMiss as exc:
        print("MISSED", type(exc).__mro__[1:3])
        print(exc)
"""


def _script(suite: Suite, mode: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    environment.pop("LLM_CACHE_MODE", None)
    if mode is not None:
        environment["LLM_CACHE_MODE"] = mode
    return subprocess.run(
        [sys.executable, "script.py"],
        cwd=suite.path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_script_records_then_replays_with_no_upstream_request(suite: Suite) -> None:
    suite.write("script.py", SCRIPT)
    recorded = _script(suite, "record")
    assert recorded.returncode == 0, recorded.stderr
    assert "ANSWER Echo: evaluate this" in recorded.stdout
    assert "INNER Echo: nested" in recorded.stdout
    assert "DECORATED Echo: from a decorated function" in recorded.stdout
    assert "ASYNC Echo: async" in recorded.stdout
    files = suite.cassettes()
    assert sorted(files) == [
        "evals/cassettes/async.yaml",
        "evals/cassettes/decorated.yaml",
        "evals/cassettes/inner.yaml",
        "evals/cassettes/run.yaml",
    ]
    assert '"content": "nested"' in files["evals/cassettes/inner.yaml"]
    assert '"nested"' not in files["evals/cassettes/run.yaml"], "the innermost cassette wins"
    assert files["evals/cassettes/run.yaml"].count("- key: ") == 2
    assert "ttl: 2592000" in files["evals/cassettes/run.yaml"]
    # The summary goes through logging.
    assert "evals/cassettes/run.yaml (mode record): 0 replayed, 2 recorded" in recorded.stderr
    upstream = suite.upstream()
    assert upstream == 6  # five cached calls and the one after every block

    replayed = _script(suite, None, MISS="1")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.replace("MISSED", "").count("Echo:") == 5
    assert suite.upstream() == upstream + 1, "only the call outside every block went out"
    assert "(mode replay): 2 replayed, 0 recorded" in replayed.stderr
    # A miss raises CacheMiss, a BaseException no SDK retries, with the usual message.
    assert "MISSED" in replayed.stdout
    assert "no recorded response for POST" in replayed.stdout
    assert "LLM_CACHE_MODE=record python" in replayed.stdout
    assert suite.cassettes() == files, "replay writes nothing"


def test_a_block_inside_a_marked_test_uses_its_own_cassette(suite: Suite) -> None:
    suite.write(
        "test_nested.py",
        """
        import os, httpx, pytest, pytest_llmcache

        URL = os.environ["FAKE_URL"] + "/v1/chat/completions"

        def ask(content):
            body = {"model": "m", "messages": [{"role": "user", "content": content}]}
            return httpx.post(URL, json=body).json()["choices"][0]["message"]["content"]

        @pytest.mark.llm_cache
        def test_outer(llm_cache):
            ask("outer before")
            with pytest_llmcache.cassette("cassettes/shared_block.yaml") as block:
                ask("in the block")
                assert block.counts.recorded + block.counts.replayed == 1
            ask("outer after")
            assert llm_cache.counts.recorded + llm_cache.counts.replayed == 2
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    files = suite.cassettes()
    assert sorted(files) == ["cassettes/shared_block.yaml", "cassettes/test_nested/test_outer.yaml"]
    assert '"in the block"' in files["cassettes/shared_block.yaml"]
    assert '"in the block"' not in files["cassettes/test_nested/test_outer.yaml"]
    before = suite.upstream()
    replayed = suite.run()
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["mode replay: 3 replayed, 0 recorded, 0 missed*"])
    assert suite.upstream() == before


def test_a_bad_option_is_a_clear_error() -> None:
    import pytest_llmcache

    with pytest.raises(ValueError, match=r"cassette\(ttl=\.\.\.\)"):
        pytest_llmcache.cassette("x.yaml", ttl="soon")
    with pytest.raises(ValueError, match=r"cassette\(mode=\.\.\.\).*replay, record, auto, off"):
        pytest_llmcache.cassette("x.yaml", mode="sometimes")
