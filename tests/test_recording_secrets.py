"""No secret is ever written: names, values seen in this run, and key-shaped strings."""

from __future__ import annotations

import pytest
from conftest import Suite

ECHO = """
import os, httpx, pytest

URL = os.environ["FAKE_URL"]
TOKEN = os.environ.get("TOKEN", "credential-value-0123456789")

def ask(content, path="/v1/chat/completions", **extra):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    headers = {"authorization": "Bearer " + TOKEN, "cookie": "session=abc123456789"}
    return httpx.post(URL + path, json=body, headers=headers, **extra)
"""


def test_credentials_echoed_back_are_scrubbed_and_replay_still_matches(suite: Suite) -> None:
    suite.write("helpers.py", ECHO)
    suite.write(
        "test_echo.py",
        """
        import pytest
        from helpers import ask, TOKEN

        @pytest.mark.llm_cache
        def test_echo():
            reply = ask("my token is " + TOKEN).json()
            assert reply["choices"][0]["message"]["content"].endswith(TOKEN)
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "credential-value-0123456789" not in text
    assert "my token is <redacted>" in text
    assert "session=abc" not in text
    assert "set-cookie" not in text
    assert "org-fake123" not in text
    assert "00000000-fake-org" not in text


def test_secret_query_parameters_are_dropped_from_the_url_and_the_key(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write(
        "test_query.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_query():
            url = os.environ["FAKE_URL"] + "/v1/models"
            key = os.environ["QUERY_KEY"]
            assert httpx.get(url, params={"key": key, "alt": "json"}).status_code == 200
        """,
    )
    monkeypatch.setenv("QUERY_KEY", "first-query-secret-123")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "first-query-secret-123" not in text
    assert "key=" not in text, "the parameter is left out of the stored URL"
    assert "alt=json" in text
    monkeypatch.setenv("QUERY_KEY", "another-query-secret-456")
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1


def test_a_key_shaped_value_in_a_response_is_refused_and_nothing_is_written(
    suite: Suite,
) -> None:
    suite.write("helpers.py", ECHO)
    suite.write(
        "test_leak.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        def test_leak():
            ask("here is a key: " + "sk-" + "Z" * 40)
        """,
    )
    result = suite.run("--llm-cache=record")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*refusing to write cassettes/test_leak/test_leak.yaml*shaped like an API key*",
            "  test: test_leak.py::test_leak",
            "  where: request.body.json.messages[0].content",
            "  value: sk-ZZZ... *",
            "*@pytest.mark.llm_cache(allow_secrets=*",
        ]
    )
    assert "Z" * 20 not in result.stdout.str(), "the value is masked in the message"
    assert "During handling" not in result.stdout.str()
    assert suite.cassettes() == {}


def test_match_api_key_scopes_entries_by_a_salted_hash_of_the_key(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("helpers.py", ECHO)
    suite.write(
        "test_scoped.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache(match_api_key=True)
        def test_scoped():
            assert ask("hi").status_code == 200
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "credential-value" not in text
    suite.run().assert_outcomes(passed=1)
    monkeypatch.setenv("TOKEN", "a-different-credential-987")
    result = suite.run()
    result.assert_outcomes(failed=1)
    assert suite.upstream() == 1


def test_without_match_api_key_another_key_replays_the_same_entry(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("helpers.py", ECHO)
    suite.write(
        "test_unscoped.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        def test_unscoped():
            assert ask("hi").status_code == 200
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    monkeypatch.setenv("TOKEN", "a-different-credential-987")
    suite.run().assert_outcomes(passed=1)
