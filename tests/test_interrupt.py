"""Ctrl-C in the middle of a recording run leaves every cassette as it was, or complete."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette, Entry

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

TESTS = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_a_finishes():
    body = {"model": "m", "messages": [{"role": "user", "content": "done"}]}
    httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)

@pytest.mark.llm_cache
def test_b_hangs():
    body = {"model": "m", "messages": [{"role": "user", "content": "first"}]}
    httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
    with httpx.stream("GET", os.environ["HANG_URL"], timeout=60) as response:
        for _ in response.iter_bytes():
            pass
"""

OLD_B = """version: 1
entries:
- key: 0123456789abcdef0123456789abcdef
  recorded_at: '2026-01-01T00:00:00Z'
  duration: 0.1
  request:
    method: GET
    url: http://old.invalid/
    headers: {}
    body: {}
  response:
    status: 200
    headers: {}
    body:
      text: old
"""


@pytest.fixture
def hanging_server() -> Iterator[tuple[str, threading.Event]]:
    """Sends one SSE event, then nothing until the test ends."""
    reached = threading.Event()
    release = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\nc\r\ndata: first\n\r\n"
            )
            reached.set()
            release.wait(60)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stream", reached
    release.set()
    thread.join(5)
    listener.close()


def test_sigint_during_recording_leaves_cassettes_old_or_complete(
    suite: Suite, hanging_server: tuple[str, threading.Event]
) -> None:
    url, reached = hanging_server
    suite.write("test_int.py", TESTS)
    old_b = suite.write("cassettes/test_int/test_b_hangs.yaml", OLD_B)
    env = {**os.environ, "HANG_URL": url, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--llm-cache=record", "-p", "no:cacheprovider"],
        cwd=suite.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert reached.wait(60), "the run never reached the hanging stream"
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    finished = suite.path / "cassettes/test_int/test_a_finishes.yaml"
    assert finished.read_text().startswith("version: 2\n")
    assert [prompt(entry) for entry in Cassette.load(finished)] == ["done"]
    # The interrupted test's cassette holds its old content, or its complete new entries;
    # the stream cut short is never stored.
    text = old_b.read_text()
    if text != OLD_B:
        assert [prompt(entry) for entry in Cassette.load(old_b)] == ["first"], text
    leftovers = [p.name for p in (suite.path / "cassettes/test_int").iterdir()]
    assert sorted(leftovers) == ["test_a_finishes.yaml", "test_b_hangs.yaml"]


def prompt(entry: Entry) -> str | None:
    """The user message of a recorded chat call; ``None`` for any other request."""
    body = entry.request.get("body") or {}
    messages = body.get("json", {}).get("messages") if isinstance(body, dict) else None
    return messages[0]["content"] if messages else None
