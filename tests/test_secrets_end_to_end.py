"""Credentials in URLs, custom headers and bodies never reach a cassette, and the file passes
``llm-cache check``; a key-shaped example can be allowed, and ``check`` agrees."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import Suite


class _Echo(BaseHTTPRequestHandler):
    """Answers with everything it was sent: path and query, headers and body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """Echo the request."""
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        echoed = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        payload = json.dumps(echoed).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)
    server.server_close()


TESTS = """
import os, httpx, pytest

def call(client):
    base = os.environ["ECHO_URL"].replace("http://", "http://svc-user:svc-pass-{n}@")
    params = {
        "X-Amz-Security-Token": "amz-session-token-{n}",
        "X-Amz-Signature": "amz-signature-{n}abcdef",
        "sig": "azure-sas-signature-{n}",
        "model": "m",
    }
    headers = {"ocp-apim-subscription-key": "apim-subscription-{n}"}
    body = {"query": "weather", "api_key": "search-api-key-{n}"}
    body["nested"] = {"apiKey": "nested-{n}-secret"}
    return client.post(base + "/search", params=params, headers=headers, json=body)

@pytest.mark.llm_cache
def test_search():
    with httpx.Client() as client:
        assert call(client).status_code == 200
"""

SECRETS = [
    "svc-pass-{n}",
    "amz-session-token-{n}",
    "amz-signature-{n}abcdef",
    "azure-sas-signature-{n}",
    "apim-subscription-{n}",
    "search-api-key-{n}",
    "nested-{n}-secret",
]


def _check(*paths: str, cwd: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmcache", "check", *paths],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_credentials_in_urls_headers_and_bodies_are_never_written(
    suite: Suite, echo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_URL", echo_url)
    suite.write("test_search.py", TESTS.replace("{n}", "1"))
    recorded = suite.run("--llm-cache=record")
    recorded.assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    for secret in SECRETS:
        assert secret.replace("{n}", "1") not in text, secret
    assert "svc-user" not in text, "no userinfo in the stored URL"
    assert "query: weather" in text or '"weather"' in text
    checked = _check("cassettes", cwd=suite.path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # CI has other credentials: the same calls still replay.
    suite.write("test_search.py", TESTS.replace("{n}", "2"))
    replayed = suite.run()
    replayed.assert_outcomes(passed=1)


CODEGEN = """
import os, httpx, pytest

EXAMPLE = "sk-proj-EXAMPLE" + "0" * 40

@pytest.mark.llm_cache(allow_secrets=["sk-proj-EXAMPLE*"])
def test_codegen():
    body = {"model": "m", "messages": [{"role": "user", "content": "use " + EXAMPLE}]}
    reply = httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body).json()
    assert EXAMPLE in reply["choices"][0]["message"]["content"]
"""


def test_an_allowed_key_shaped_example_is_recorded_and_check_agrees(suite: Suite) -> None:
    suite.write("test_codegen.py", CODEGEN)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "sk-proj-EXAMPLE" + "0" * 40 in text
    assert "allow_secrets:" in text
    checked = _check("cassettes", cwd=suite.path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    before = suite.upstream()
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == before

    # Without the allowance the same answer is refused, and says how to allow it.
    suite.write("test_codegen.py", CODEGEN.replace('(allow_secrets=["sk-proj-EXAMPLE*"])', ""))
    refused = suite.run("--llm-cache=record")
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*value: sk-pro...*", "*allow_secrets=*"])
    assert "EXAMPLE" + "0" * 40 not in refused.stdout.str()


FORM = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_token():
    form = {
        "client_secret": "form-secret-{n}",
        "password": "form-password-{n}",
        "grant_type": "client_credentials",
        "scope": "{scope}",
    }
    with httpx.Client() as client:
        assert client.post(os.environ["ECHO_URL"] + "/token", data=form).status_code == 200
"""


def test_credentials_in_a_form_body_are_never_written_printed_or_keyed(
    suite: Suite, echo_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OAuth token request sends its client secret as a form field."""
    monkeypatch.setenv("ECHO_URL", echo_url)
    suite.write("test_token.py", FORM.replace("{n}", "1").replace("{scope}", "read"))
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "form-secret-1" not in text
    assert "form-password-1" not in text
    assert "client_secret=<redacted>" in text
    assert "scope=read" in text
    checked = _check("cassettes", cwd=suite.path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # CI has other credentials: the same call still replays.
    suite.write("test_token.py", FORM.replace("{n}", "2").replace("{scope}", "read"))
    suite.run().assert_outcomes(passed=1)
    # A real change misses, and the message shows it without the credentials.
    suite.write("test_token.py", FORM.replace("{n}", "3").replace("{scope}", "write"))
    missed = suite.run("-rA")
    missed.assert_outcomes(failed=1)
    output = missed.stdout.str()
    assert 'body: "client_secret=<redacted>&password=<redacted>&grant_type' in output
    assert "form-secret-3" not in output
    assert "form-password-3" not in output

    # A form secret put into a cassette by hand is what check reports.
    path = next(suite.path.rglob("test_token.yaml"))
    path.write_text(text.replace("client_secret=<redacted>", "client_secret=leaked-by-hand"))
    checked = _check("cassettes", cwd=suite.path)
    assert checked.returncode == 1
    assert "client_secret" in checked.stdout
