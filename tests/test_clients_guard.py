"""Bad input: a client whose transport the cache cannot see into.

Such a call can be neither recorded nor replayed, so a marked test that makes one fails, in
every mode, with a message naming the transport and the fix: before anything is sent when the
transport opens a connection of its own, after the call when it answers in-process. A
transport that wraps ``HTTPTransport``, ``MockTransport`` and unmarked tests are left alone.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import Suite
from scenarios import PRELUDE, run

httpx = pytest.importorskip("httpx")

SOURCE = """
import socket

import httpx

CHAT = {"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]}


def wire(request):
    head = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\\r\\n"
    head += f"host: {request.url.host}\\r\\ncontent-length: {len(request.content)}\\r\\n"
    return (head + "connection: close\\r\\n\\r\\n").encode() + request.content


def status(answer):
    return int(answer.split(b" ", 2)[1])


class SocketTransport(httpx.BaseTransport):
    def handle_request(self, request):
        address = (request.url.host, request.url.port)
        with socket.create_connection(address) as sock, sock.makefile("rb") as answer:
            request.read()
            sock.sendall(wire(request))
            return httpx.Response(status(answer.read()))


class AsyncSocketTransport(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        reader, writer = await asyncio.open_connection(request.url.host, request.url.port)
        writer.write(wire(request))
        answer = await reader.read()
        writer.close()
        return httpx.Response(status(answer))


class CannedTransport(httpx.BaseTransport):
    def handle_request(self, request):
        return httpx.Response(200, json={"canned": 1})


class LoggingTransport(httpx.BaseTransport):
    def __init__(self):
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request):
        return self.inner.handle_request(request)


def test_unknown_transport():
    with httpx.Client(transport=SocketTransport()) as client:
        client.post(URL + "/v1/chat/completions", json=CHAT)


def test_unknown_async_transport():
    async def run():
        async with httpx.AsyncClient(transport=AsyncSocketTransport()) as client:
            await client.post(URL + "/v1/chat/completions", json=CHAT)

    asyncio.run(run())


def test_in_process_transport():
    with httpx.Client(transport=CannedTransport()) as client:
        client.post(URL + "/v1/chat/completions", json=CHAT)


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
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "out"))
    suite.write("test_guarded.py", PRELUDE + textwrap.dedent(SOURCE))
    suite.write("test_unmarked.py", UNMARKED)
    if mode == "replay":
        run(suite, "--llm-cache=record", "test_guarded.py").assert_outcomes(passed=2, failed=3)
    before = suite.upstream()
    result = run(suite, f"--llm-cache={mode}")
    result.assert_outcomes(passed=3, failed=3)
    url = suite.provider.url
    port = url.rpartition(":")[2]
    for name in ("SocketTransport", "AsyncSocketTransport"):
        result.stdout.fnmatch_lines(
            [
                f"*POST {url}/v1/chat/completions went around the cache: it was sent through "
                f"test_guarded.{name}*connection to 127.0.0.1 port {port}. The connection was "
                "refused and nothing was sent*",
                f"*test: test_guarded.py::test_unknown_{'async_' * name.startswith('Async')}"
                "transport",
            ]
        )
    # A transport that answers in-process is only known by what it returns.
    result.stdout.fnmatch_lines(
        [
            f"*POST {url}/v1/chat/completions went around the cache: it was sent through "
            "test_guarded.CannedTransport, a transport pytest-llmcache cannot see into*",
            "*fix: give the client an httpx.HTTPTransport*",
        ]
    )
    wrapped = (suite.path / "out" / "wrapped.json").read_text()
    assert ('"HIT"' if mode == "replay" else '"MISS"') in wrapped
    # Nothing sent through an unknown transport reached the provider; the unmarked test's
    # call and, when recording, the wrapping transport's did.
    assert suite.upstream() - before == (2 if mode == "record" else 1)
