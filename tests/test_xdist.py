"""pytest-xdist: shared cassettes written concurrently, and one summary for the whole run."""

from __future__ import annotations

import json

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette

pytest.importorskip("xdist")

SHARED = """
import os, httpx, pytest

@pytest.mark.llm_cache(cassette="shared")
@pytest.mark.parametrize("n", range(40))
def test_shared(n):
    body = {"model": "m", "messages": [{"role": "user", "content": f"question {n}"}]}
    reply = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == f"Echo: question {n}"
"""
CASSETTE = "cassettes/test_shared/shared.yaml"


def test_forty_tests_share_one_cassette_across_four_workers(suite: Suite) -> None:
    suite.write("test_shared.py", SHARED)
    recorded = suite.run("-p", "xdist", "-n", "4", "--llm-cache=record")
    recorded.assert_outcomes(passed=40)
    assert suite.upstream() == 40
    text = suite.cassettes()[CASSETTE]
    assert text.count("- key: ") == 40, "no entry lost to a concurrent write"
    for n in range(40):
        assert f'"content": "question {n}"\n' in text
    prompts = [
        entry.request["body"]["json"]["messages"][0]["content"]
        for entry in Cassette.load(suite.path / CASSETTE)
    ]
    assert sorted(prompts) == sorted(f"question {n}" for n in range(40))
    recorded.stdout.fnmatch_lines(["mode record: 0 replayed, 40 recorded, 0 missed*"])

    replayed = suite.run("-p", "xdist", "-n", "4")
    replayed.assert_outcomes(passed=40)
    assert suite.upstream() == 40
    replayed.stdout.fnmatch_lines(["mode replay: 40 replayed, 0 recorded, 0 missed, 0 expired*"])


def test_record_with_workers_keeps_other_tests_entries_and_prune_drops_deleted_ones(
    suite: Suite,
) -> None:
    suite.write("test_shared.py", SHARED)
    suite.run("-p", "xdist", "-n", "2", "--llm-cache=record").assert_outcomes(passed=40)
    suite.write("test_shared.py", SHARED.replace("range(40)", "range(10)"))
    suite.run("-p", "xdist", "-n", "2", "--llm-cache=record").assert_outcomes(passed=10)
    # record replaces what the tests that ran recorded, and nothing else.
    assert suite.cassettes()[CASSETTE].count("- key: ") == 40
    pruned = suite.run("-p", "xdist", "-n", "2", "--llm-cache-prune")
    pruned.assert_outcomes(passed=10)
    assert suite.cassettes()[CASSETTE].count("- key: ") == 10


SAVINGS = """
import os, httpx, pytest

URL = os.environ["FAKE_URL"]

@pytest.mark.llm_cache
@pytest.mark.parametrize("n", range(4))
def test_chat(n):
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": f"one two {n}"}]}
    httpx.post(URL + "/v1/chat/completions", json=body)

@pytest.mark.llm_cache
def test_anthropic_stream():
    body = {"model": "claude-test", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "a b c"}]}
    with httpx.stream("POST", URL + "/v1/messages", json=body) as response:
        response.read()
"""


@pytest.mark.parametrize("workers", [["-p", "xdist", "-n", "2"], []], ids=["n2", "serial"])
def test_the_summary_and_json_report_add_up_every_worker(suite: Suite, workers: list[str]) -> None:
    suite.write("test_savings.py", SAVINGS)
    suite.write(
        "pytest.ini",
        "[pytest]\nllm_cache_prices =\n    gpt-test 1000000 2000000\n    claude 10 20\n",
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=5)
    report = suite.path / "out" / "report.json"
    result = suite.run(*workers, "--llm-cache-report=out/report.json")
    result.assert_outcomes(passed=5)
    data = json.loads(report.read_text())
    # The fake provider counts words: 3 prompt tokens and 4 completion tokens per chat
    # ("Echo: one two N"), and 3 in / 4 out for the stream's usage events.
    chat = data["saved"]["by_model"]["gpt-test"]
    claude = data["saved"]["by_model"]["claude-test"]
    assert (chat["input_tokens"], chat["output_tokens"]) == (4 * 3, 4 * 4), chat
    assert claude["input_tokens"] > 0, claude
    assert claude["output_tokens"] > 0, claude
    assert data["replayed"] == 5
    assert data["recorded"] == data["missed"] == data["unused"] == 0
    expected_dollars = (12 * 1 + 16 * 2) + (
        claude["input_tokens"] * 10 + claude["output_tokens"] * 20
    ) / 1e6
    assert data["saved"]["dollars"] == pytest.approx(expected_dollars)
    tokens = 12 + 16 + claude["input_tokens"] + claude["output_tokens"]
    result.stdout.fnmatch_lines(
        [
            "mode replay: 5 replayed, 0 recorded, 0 missed, 0 expired, 0 unused",
            f"saved: {tokens} tokens (*), * s of calls, ~$*",
        ]
    )
    assert data["saved"]["seconds"] > 0
    assert result.stdout.str().count("= llm-cache =") == 1
