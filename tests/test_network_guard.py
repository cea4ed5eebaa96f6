"""Replay is offline: a marked test's connection the cache did not answer fails before it opens.

The user's tests aim every client at a listening socket of ours that never accepts: after the
run, a connection waiting in its backlog would show that something got through.
"""

from __future__ import annotations

import ipaddress
import socket
import textwrap
from collections.abc import Iterator

import pytest
from conftest import Suite
from scenarios import run

from pytest_llmcache._adapters._socket import allows

PRELUDE = """
import asyncio
import http.client
import os
import socket
import threading

import pytest

HOST = "127.0.0.1"
PORT = int(os.environ["TARGET_PORT"])
"""

CLIENTS = """
import aiohttp
import httpx

pytestmark = pytest.mark.llm_cache

BODY = b'{"model": "gpt-fake", "messages": []}'


def test_raw_socket():
    with socket.create_connection((HOST, PORT), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\\r\\n\\r\\n")


def test_raw_socket_caught():
    try:
        socket.create_connection((HOST, PORT), timeout=5).sendall(b"hello")
    except BaseException:
        pass  # the code under test swallows everything: the test still fails


def test_asyncio_stream():
    async def call():
        reader, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\\r\\n\\r\\n")

    asyncio.run(call())


def test_http_client():
    connection = http.client.HTTPConnection(HOST, PORT, timeout=5)
    connection.request("POST", "/v1/chat/completions", body=BODY)
    connection.getresponse()


class Resolver(aiohttp.abc.AbstractResolver):
    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": HOST, "port": PORT, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self):
        pass


def test_aiohttp_custom_resolver():
    async def call():
        connector = aiohttp.TCPConnector(resolver=Resolver())
        async with aiohttp.ClientSession(connector=connector) as session:
            await session.post(f"http://llm.internal:{PORT}/v1/chat/completions", data=BODY)

    asyncio.run(call())


class SocketTransport(httpx.BaseTransport):
    \"\"\"Speaks HTTP over a socket of its own.\"\"\"

    def handle_request(self, request):
        with socket.create_connection((request.url.host, request.url.port), timeout=5) as sock:
            sock.sendall(b"POST / HTTP/1.1\\r\\n\\r\\n" + request.read())
            return httpx.Response(200, content=sock.recv(65536))


def test_unknown_httpx_transport():
    with httpx.Client(transport=SocketTransport()) as client:
        client.post(f"http://{HOST}:{PORT}/v1/chat/completions", content=BODY)
"""

LOCAL = """
pytestmark = pytest.mark.llm_cache


def echo_server(server):
    try:
        connection, _ = server.accept()
    except OSError:
        return  # the test is over and closed the server
    with connection:
        connection.sendall(connection.recv(100))


def test_loopback_echo():
    with socket.create_server((HOST, 0)) as server:
        threading.Thread(target=echo_server, args=(server,), daemon=True).start()
        with socket.create_connection(server.getsockname()[:2], timeout=5) as sock:
            sock.sendall(b"ping")
            assert sock.recv(100) == b"ping"


def test_unix_socket(tmp_path):
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            assert client.connect_ex(path) != 0  # already connected: the call went through
"""

ALLOWED = """
pytestmark = pytest.mark.llm_cache


@pytest.mark.llm_cache(allow_hosts=["127.0.0.1"])
def test_marker_ip():
    socket.create_connection((HOST, PORT), timeout=5).close()


@pytest.mark.llm_cache(allow_hosts=["localhost"])
def test_marker_name():
    socket.create_connection(("localhost", PORT), timeout=5).close()


@pytest.mark.llm_cache(allow_hosts=["localhost"])
def test_marker_name_then_ip():
    # The name was resolved first (as asyncio and most clients do): the address it gave counts.
    address = socket.getaddrinfo("localhost", PORT, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    with socket.socket() as sock:
        sock.settimeout(5)
        sock.connect(address)


@pytest.mark.llm_cache(allow_hosts=["example.com"])
def test_marker_other_host():
    socket.create_connection((HOST, PORT), timeout=5).close()
"""

UNMARKED = """
def test_unmarked():
    socket.create_connection((HOST, PORT), timeout=5).close()
"""

BLOCK_LOOPBACK = "[pytest]\nllm_cache_block_loopback = true\n"


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A listening socket on loopback that never accepts; the user's tests aim at it."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        monkeypatch.setenv("TARGET_PORT", str(server.getsockname()[1]))
        server.setblocking(False)
        yield server


def connections(server: socket.socket) -> int:
    """How many connections reached ``server`` (and were waiting to be accepted)."""
    count = 0
    while True:
        try:
            server.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


def test_replay_refuses_every_client_before_it_connects(
    suite: Suite, target: socket.socket
) -> None:
    suite.write("pytest.ini", BLOCK_LOOPBACK)
    suite.write("test_clients.py", PRELUDE + textwrap.dedent(CLIENTS))
    result = run(suite, "--llm-cache=replay")
    result.assert_outcomes(failed=6)
    port = target.getsockname()[1]
    for name in ("test_raw_socket", "test_raw_socket_caught", "test_asyncio_stream"):
        result.stdout.fnmatch_lines(
            [
                f"*refused a connection to 127.0.0.1 port {port}: replay is offline*"
                "llm_cache_block_loopback is on. Nothing was sent.*",
                f"*test: test_clients.py::{name}",
                "*allow it: llm_cache_allow_hosts = 127.0.0.1 (ini), or "
                "@pytest.mark.llm_cache(allow_hosts=?'127.0.0.1'?) on the test",
            ]
        )
    # http.client's and aiohttp's adapters answer (here: fail) the call before a connection
    # is made; the socket guard stands behind them.
    for name, host in (("http_client", "127.0.0.1"), ("aiohttp_custom_resolver", "llm.internal")):
        result.stdout.fnmatch_lines(
            [
                f"*no recorded response for POST http://{host}:{port}/v1/chat/completions",
                f"*test:     test_clients.py::test_{name}",
            ]
        )
    result.stdout.fnmatch_lines(
        [
            f"*POST http://127.0.0.1:{port}/v1/chat/completions went around the cache: it was "
            f"sent through test_clients.SocketTransport*connection to 127.0.0.1 port {port}*",
            "*test: test_clients.py::test_unknown_httpx_transport",
        ]
    )
    assert connections(target) == 0
    assert suite.upstream() == 0


def test_record_mode_and_unmarked_tests_are_not_guarded(
    suite: Suite, target: socket.socket
) -> None:
    suite.write("pytest.ini", BLOCK_LOOPBACK)
    suite.write("test_clients.py", PRELUDE + textwrap.dedent(CLIENTS))
    suite.write("test_unmarked.py", PRELUDE + UNMARKED)
    run(suite, "--llm-cache=record", "-k", "raw_socket").assert_outcomes(passed=2)
    assert connections(target) == 2
    run(suite, "--llm-cache=replay", "test_unmarked.py").assert_outcomes(passed=1)
    assert connections(target) == 1


def test_loopback_and_unix_sockets_are_allowed_by_default(
    suite: Suite, target: socket.socket
) -> None:
    suite.write("test_local.py", PRELUDE + LOCAL)
    run(suite, "--llm-cache=replay").assert_outcomes(passed=2)
    suite.write("pytest.ini", BLOCK_LOOPBACK)
    result = run(suite, "--llm-cache=replay")
    # Unix sockets stay allowed; loopback does not.
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*refused a connection to 127.0.0.1 port *", "*test: test_local.py::test_loopback_echo"]
    )


def test_allow_hosts_from_marker_and_ini(suite: Suite, target: socket.socket) -> None:
    suite.write("pytest.ini", BLOCK_LOOPBACK)
    suite.write("test_allowed.py", PRELUDE + ALLOWED)
    result = run(suite, "--llm-cache=replay")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*refused a connection to 127.0.0.1 port*", "*test_allowed.py::test_marker_other_host"]
    )
    assert connections(target) == 3
    suite.write("pytest.ini", BLOCK_LOOPBACK + "llm_cache_allow_hosts =\n    127.0.0.0/8\n")
    run(suite, "--llm-cache=replay").assert_outcomes(passed=4)
    assert connections(target) == 4


@pytest.mark.parametrize(
    ("hosts", "ip", "names", "allowed"),
    [
        (("api.example.com",), "93.184.216.34", {"api.example.com"}, True),
        (("api.example.com",), "93.184.216.34", {"www.example.com"}, False),
        (("*.example.com",), "93.184.216.34", {"eu.api.example.com"}, True),
        (("*.example.com",), "93.184.216.34", {"example.com"}, False),
        (("*.example.com",), "93.184.216.34", {"badexample.com"}, False),
        (("93.184.216.34",), "93.184.216.34", set(), True),
        (("93.184.216.34",), "93.184.216.35", set(), False),
        (("10.0.0.0/8",), "10.20.30.40", set(), True),
        (("10.0.0.0/8",), "11.0.0.1", set(), False),
        (("2001:db8::/32",), "2001:db8::1", set(), True),
        (("[2001:db8::1]",), "2001:db8::1", set(), True),
        ((), "93.184.216.34", {"api.example.com"}, False),
    ],
)
def test_allow_list_patterns(
    hosts: tuple[str, ...], ip: str, names: set[str], allowed: bool
) -> None:
    assert allows(hosts, ipaddress.ip_address(ip), names) is allowed


def test_pycurl(suite: Suite, target: socket.socket) -> None:
    """pycurl opens its sockets in libcurl, where no Python patch reaches."""
    pytest.importorskip("pycurl", reason="pycurl is not installed: its path is not tested")
    suite.write("pytest.ini", BLOCK_LOOPBACK)
    suite.write(
        "test_curl.py",
        PRELUDE
        + textwrap.dedent(
            """
            import pycurl

            @pytest.mark.llm_cache
            def test_curl():
                curl = pycurl.Curl()
                curl.setopt(pycurl.URL, f"http://{HOST}:{PORT}/")
                curl.setopt(pycurl.TIMEOUT, 2)
                curl.perform()
            """
        ),
    )
    run(suite, "--llm-cache=replay").assert_outcomes(failed=1)
    # libcurl connects by itself: the guard cannot see it (the README says so).
    assert connections(target) == 1
