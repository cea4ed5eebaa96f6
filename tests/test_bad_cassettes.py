"""Broken cassettes get a clear message naming the file, and stay exactly as they were."""

from __future__ import annotations

import pytest
from conftest import Suite

TEST = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_chat():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
"""
CASSETTE = "cassettes/test_broken/test_chat.yaml"


@pytest.fixture
def recorded(suite: Suite) -> Suite:
    suite.write("test_broken.py", TEST)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    suite.provider.reset()
    return suite


def truncate(text: str) -> str:
    return text[: len(text) * 2 // 3].rsplit("\n", 1)[0] + '\n  "unterminated'


def drop_response(text: str) -> str:
    return text.split("  response:")[0]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (truncate, "not a valid cassette (YAML error"),
        (drop_response, "entry lacks response"),
        (lambda text: text.replace("version: 2", "version: 99"), "cassette version 99"),
        (lambda text: "- just\n- a list\n", "not a pytest-llmcache cassette"),
        (
            lambda text: text.replace("  response: |\n    200\n", "  response: |\n    ok\n"),
            "three-digit status",
        ),
        (
            lambda text: "interactions:\n- request: {uri: 'http://x'}\nversion: 1\n",
            "a vcrpy / pytest-recording cassette",
        ),
    ],
    ids=[
        "truncated",
        "entry-without-response",
        "unknown-version",
        "not-ours",
        "bad-status",
        "vcrpy",
    ],
)
@pytest.mark.parametrize("mode", ["replay", "auto", "record"])
def test_a_damaged_cassette_fails_the_test_and_is_left_untouched(
    recorded: Suite, damage: object, expected: str, mode: str
) -> None:
    path = recorded.path / CASSETTE
    assert callable(damage)
    broken = damage(path.read_text())
    path.write_text(broken)
    result = recorded.run(f"--llm-cache={mode}")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert CASSETTE in out
    assert expected in out
    assert path.read_text() == broken, "a damaged cassette is never rewritten"
    assert recorded.upstream() == 0


def test_a_yaml_error_names_the_line(recorded: Suite) -> None:
    path = recorded.path / CASSETTE
    path.write_text("version: 1\nentries:\n- key: [unclosed\n")
    result = recorded.run()
    result.stdout.fnmatch_lines([f"*{CASSETTE}:*: not a valid cassette*"])


def test_an_unwritable_folder_is_reported_with_its_path(suite: Suite) -> None:
    suite.write("test_broken.py", TEST)
    # A file where the cassette folder should be: no user, root included, can write there.
    (suite.path / "cassettes").write_text("not a folder")
    result = suite.run("--llm-cache=record")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cannot read cassette: Not a directory*"])
    assert CASSETTE in result.stdout.str()
    assert (suite.path / "cassettes").read_text() == "not a folder"
