"""Bad input: a client whose transport the cache cannot see into.

Such a call may reach the network and can be neither recorded nor replayed, so a marked test
that makes one fails, in every mode, with a message naming the transport and the fix. A
transport that wraps ``HTTPTransport``, ``MockTransport`` and unmarked tests are left alone.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import Suite
from scenarios import PRELUDE, run

httpx = pytest.importorskip("httpx")

SOURCE = """
import urllib.request

import httpx

CHAT = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}


def urlopen(request):
    sent = urllib.request.Request(
        str(request.url), data=request.content or None, method=request.method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(sent) as answer:
        return httpx.Response(answer.status, content=answer.read())


class UrllibTransport(httpx.BaseTransport):
    def handle_request(self, request):
        return urlopen(request)


class AsyncUrllibTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        return await asyncio.to_thread(urlopen, request)


class LoggingTransport(httpx.BaseTransport):
    def __init__(self):
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request):
        return self.inner.handle_request(request)


def test_unknown_transport():
    with httpx.Client(transport=UrllibTransport()) as client:
        client.post(URL + "/v1/chat/completions", json=CHAT)


def test_unknown_async_transport():
    async def run():
        async with httpx.AsyncClient(transport=AsyncUrllibTransport()) as client:
            await client.post(URL + "/v1/chat/completions", json=CHAT)

    asyncio.run(run())


def test_wrapping_transport():
    with httpx.Client(transport=LoggingTransport()) as client:
        response = client.post(URL + "/v1/chat/completions", json=CHAT)
    save("wrapped", [response.json(), response.headers["x-llm-cache-status"]])


def test_mock_transport():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"mocked": 1}))
    with httpx.Client(transport=transport) as client:
        save("mocked", client.get("https://example.invalid/anything").json())
"""

UNMARKED = """
import os
import urllib.request

import httpx

URL = os.environ["FAKE_URL"]


class UrllibTransport(httpx.BaseTransport):
    def handle_request(self, request):
        with urllib.request.urlopen(str(request.url)) as answer:
            return httpx.Response(answer.status, content=answer.read())


def test_unmarked_unknown_transport():
    with httpx.Client(transport=UrllibTransport()) as client:
        assert client.get(URL + "/v1/models").status_code == 200
"""


@pytest.mark.parametrize("mode", ["record", "replay"])
def test_unknown_transport_fails_the_test(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "out"))
    suite.write("test_guarded.py", PRELUDE + textwrap.dedent(SOURCE))
    suite.write("test_unmarked.py", UNMARKED)
    if mode == "replay":
        run(suite, "--llm-cache=record", "test_guarded.py").assert_outcomes(passed=2, failed=2)
    before = suite.upstream()
    result = run(suite, f"--llm-cache={mode}")
    result.assert_outcomes(passed=3, failed=2)
    for name in ("UrllibTransport", "AsyncUrllibTransport"):
        result.stdout.fnmatch_lines(
            [f"*POST {suite.provider.url}/v1/chat/completions went around the cache*{name}*"]
        )
    result.stdout.fnmatch_lines(["*fix: give the client an httpx.HTTPTransport*"])
    wrapped = (suite.path / "out" / "wrapped.json").read_text()
    assert ('"HIT"' if mode == "replay" else '"MISS"') in wrapped
    # What went around the cache reached the provider: that is what the failure says.
    went_out = 2 + 1 + (1 if mode == "record" else 0)  # unknown x2, unmarked, wrapped
    assert suite.upstream() - before == went_out
