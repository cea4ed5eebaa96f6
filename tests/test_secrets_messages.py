"""No secret reaches the terminal, a JUnit file or the JSON report (SPEC §6).

Key-shaped strings here are fakes.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Suite

from pytest_llmcache._audit import Audit
from pytest_llmcache._engine import Engine
from pytest_llmcache._report import summary_lines, write_json
from pytest_llmcache._settings import Settings

FAKE_KEY = "gsk_" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"
SECRET_URL = "https://bob:url-password-1@api.example.com/v1?api_key=query-secret-1"
SECRETS = ("url-password-1", "query-secret-1", FAKE_KEY)


def engine_with_secrets_in_test_ids() -> tuple[Engine, Audit]:
    engine = Engine(Settings())
    stats = engine.stats
    stats.counts.missed = 1
    stats.counts.expired = 1
    stats.missed_tests.append(f"test_a.py::test_a[{SECRET_URL}]")
    stats.expired_tests.append(f"test_a.py::test_b[{FAKE_KEY}]")
    audit = Audit(errors=[f"could not prune {SECRET_URL}"])
    return engine, audit


def test_the_summary_shows_test_ids_without_their_secrets() -> None:
    engine, audit = engine_with_secrets_in_test_ids()
    text = "\n".join(summary_lines(engine, audit))
    assert "test_a.py::test_a[https://api.example.com/v1?api_key=<redacted>]" in text
    for secret in SECRETS:
        assert secret not in text


def test_the_json_report_holds_no_secret(tmp_path: Path) -> None:
    engine, audit = engine_with_secrets_in_test_ids()
    path = tmp_path / "report.json"
    write_json(engine, audit, path)
    text = path.read_text()
    for secret in SECRETS:
        assert secret not in text
    data = json.loads(text)
    assert data["missed_tests"] == [
        "test_a.py::test_a[https://api.example.com/v1?api_key=<redacted>]"
    ]
    assert data["expired_tests"] == ["test_a.py::test_b[gsk_Q1...]"]


def test_a_replay_miss_on_a_url_with_credentials_prints_none_of_them(suite: Suite) -> None:
    suite.write(
        "test_miss.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_miss():
            base = os.environ["FAKE_URL"].replace("://", "://bob:url-password-1@")
            httpx.get(base + "/v1/models", params={"api_key": "query-secret-1", "alt": "json"})
        """,
    )
    result = suite.run("--junitxml=junit.xml", "--llm-cache-report=report.json", "-rA", "--tb=long")
    result.assert_outcomes(failed=1)
    output = "\n".join(result.outlines + result.errlines)
    assert "no recorded response for GET" in output
    files = (suite.path / "junit.xml").read_text() + (suite.path / "report.json").read_text()
    assert "test_miss" in files
    for secret in ("url-password-1", "query-secret-1"):
        assert secret not in output
        assert secret not in files
