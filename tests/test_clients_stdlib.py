"""urllib.request, http.client and urllib3 against the fake provider: recorded, then replayed."""

from __future__ import annotations

import re

import pytest
from conftest import Suite
from scenarios import record_then_replay, run

from pytest_llmcache._cassette import Cassette

urllib3 = pytest.importorskip("urllib3", reason="the urllib3 adapter needs urllib3")

CLIENTS = """
import gzip
import http.client
import io
import urllib.error
import urllib.parse
import urllib.request

import urllib3
from urllib3.util.retry import Retry

AUTH = {"authorization": f"Bearer {API_KEY}"}
JSON = {**AUTH, "content-type": "application/json"}
HOST = urllib.parse.urlsplit(URL).hostname
PORT = urllib.parse.urlsplit(URL).port


def chat(text, **extra):
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": text}], **extra}


def post(path, body, **headers):
    data = json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, headers={**JSON, **headers})
    with urllib.request.urlopen(request) as r:
        return r.status, r.headers, r.read()


def test_urllib_get():
    with urllib.request.urlopen(urllib.request.Request(URL + "/v1/models", headers=AUTH)) as r:
        save("urllib_get", [r.status, json.loads(r.read()), r.headers["x-llm-cache-status"]])


def test_urllib_post_json():
    status, headers, body = post("/v1/chat/completions", chat("plain json"))
    save("urllib_post_json", [status, json.loads(body), headers["x-llm-cache-status"]])


def test_urllib_gzip():
    # urllib.request leaves decoding to the caller, who follows the header.
    path, accept = "/gzip/v1/chat/completions", {"accept-encoding": "gzip"}
    _, headers, raw = post(path, chat("zipped"), **accept)
    if headers.get("content-encoding") == "gzip":
        raw = gzip.decompress(raw)
    save("urllib_gzip", json.loads(raw))


def test_urllib_error_status():
    try:
        post("/v1/nowhere", {})
    except urllib.error.HTTPError as error:
        save("urllib_error_status", [error.code, json.loads(error.read())])


def test_http_client_stream_read1():
    connection = http.client.HTTPConnection(HOST, PORT)
    body = json.dumps(chat("stream me by read1", stream=True))
    connection.request("POST", "/v1/chat/completions", body=body, headers=JSON)
    r = connection.getresponse()
    chunks = []
    while chunk := r.read1():
        chunks.append(chunk.decode())
    connection.close()
    save("http_client_stream_read1", [r.getheader("content-type"), chunks])


def test_http_client_stream_readline_and_bodies():
    connection = http.client.HTTPConnection(HOST, PORT)
    body = json.dumps(chat("stream me by lines", stream=True)).encode()
    # A file body is sent chunked; the key is made of what it holds.
    connection.request("POST", "/v1/chat/completions", body=io.BytesIO(body), headers=JSON)
    r = connection.getresponse()
    lines = []
    while line := r.readline():
        lines.append(line.decode())
    # An iterable body, on the same keep-alive connection.
    parts = [b'{"model": "e", ', b'"input": "pieces"}']
    connection.request("POST", "/v1/embeddings", body=iter(parts), headers=JSON)
    embedding = json.loads(connection.getresponse().read())
    connection.close()
    save("http_client_stream_readline_and_bodies", [lines, embedding])


def test_urllib3_stream():
    with urllib3.PoolManager() as http:
        body = chat("stream me by urllib3", stream=True)
        r = http.request(
            "POST", URL + "/v1/chat/completions", json=body, headers=AUTH, preload_content=False
        )
        chunks = [chunk.decode() for chunk in r.stream()]
        r.release_conn()
    save("urllib3_stream", [r.headers["content-type"], r.headers["x-llm-cache-status"], chunks])


def test_urllib3_preload():
    with urllib3.PoolManager(headers=AUTH) as http:
        preloaded = http.request("POST", URL + "/v1/chat/completions", json=chat("preloaded"))
        given_back = preloaded.connection is None
        lazy = http.request("GET", URL + "/v1/models", preload_content=False)
        lazy_body = json.loads(lazy.read())
        lazy.release_conn()
    save("urllib3_preload", [given_back, preloaded.json(), lazy.status, lazy_body])


def test_urllib3_gzip():
    with urllib3.PoolManager() as http:
        r = http.request("POST", URL + "/gzip/v1/chat/completions", json=chat("zipped 3"))
    save("urllib3_gzip", [r.headers.get("content-encoding"), r.json()])


def test_urllib3_pool_and_retries():
    pool = urllib3.HTTPConnectionPool(HOST, PORT, headers=JSON)
    retry = Retry(total=3, status_forcelist=[429], allowed_methods=None, backoff_factor=0)
    r = pool.urlopen(
        "POST", "/flaky/v1/chat/completions", body=json.dumps(chat("again")), retries=retry
    )
    pool.close()
    save("urllib3_pool_and_retries", [r.status, json.loads(r.data)])
"""


def test_stdlib_and_urllib3_record_then_replay(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = record_then_replay(suite, monkeypatch, CLIENTS, tests=10)
    recorded, replayed = outcome.recorded, outcome.replayed
    for name in ("urllib_get", "urllib_post_json"):
        assert recorded[name][2] == "MISS"
        assert replayed[name][2] == "HIT"
        assert replayed[name][:2] == recorded[name][:2]
    outcome.same(
        "urllib_gzip",
        "urllib_error_status",
        "http_client_stream_read1",
        "http_client_stream_readline_and_bodies",
        "urllib3_preload",
        "urllib3_pool_and_retries",
    )
    assert recorded["urllib_post_json"][1]["choices"][0]["message"]["content"] == (
        "Echo: plain json"
    )
    assert replayed["urllib_gzip"]["choices"][0]["message"]["content"] == "Echo: zipped"
    assert replayed["urllib_error_status"][0] == 404
    # Preloaded, the body was read and the connection given back before request() returned.
    assert recorded["urllib3_preload"][0] is True
    # One piece per SSE event the provider flushed (role, two pieces, finish, [DONE]),
    # live and replayed alike.
    content_type, chunks = replayed["http_client_stream_read1"]
    assert content_type == "text/event-stream"
    assert len(chunks) == 5
    assert all(c.startswith("data: ") and c.endswith("\n\n") for c in chunks)
    lines, embedding = replayed["http_client_stream_readline_and_bodies"]
    assert [line for line in lines if line.strip()][-1] == "data: [DONE]\n"
    assert embedding["object"] == "list"
    assert recorded["urllib3_stream"][:2] == ["text/event-stream", "MISS"]
    assert replayed["urllib3_stream"][:2] == ["text/event-stream", "HIT"]
    assert replayed["urllib3_stream"][2] == recorded["urllib3_stream"][2]
    assert len(replayed["urllib3_stream"][2]) == 5
    # Decoded by urllib3 live, stored decoded, replayed as plain JSON.
    assert [recorded["urllib3_gzip"][0], replayed["urllib3_gzip"][0]] == ["gzip", None]
    assert replayed["urllib3_gzip"][1] == recorded["urllib3_gzip"][1]
    assert replayed["urllib3_gzip"][1]["choices"][0]["message"]["content"] == "Echo: zipped 3"
    # urllib3 retried the 429 itself: two requests upstream, one answer stored.
    assert suite.provider.count("/flaky/v1/chat/completions") == 2
    assert replayed["urllib3_pool_and_retries"][0] == 200
    cassettes = outcome.cassettes
    # One entry per call, whichever of urllib3 and http.client it went through.
    two_calls = ("readline_and_bodies", "urllib3_preload")
    for name, text in cassettes.items():
        assert text.count("- key:") == (2 if any(n in name for n in two_calls) else 1), name
    gzip_text = "\n".join(t for n, t in cassettes.items() if "gzip" in n)
    assert "content-encoding" not in gzip_text
    assert "Echo: zipped" in gzip_text
    assert "Echo: zipped 3" in gzip_text


MISSES = """
import http.client
import json
import os
import urllib.parse
import urllib.request

import pytest
import urllib3

URL = os.environ["FAKE_URL"]
BODY = json.dumps({"model": "gpt-fake", "messages": [{"role": "user", "content": "hi"}]})
JSON = {"content-type": "application/json"}

pytestmark = pytest.mark.llm_cache


def test_urllib():
    request = urllib.request.Request(URL + "/v1/chat/completions", BODY.encode(), JSON)
    urllib.request.urlopen(request)


def test_http_client():
    split = urllib.parse.urlsplit(URL)
    connection = http.client.HTTPConnection(split.hostname, split.port)
    try:
        connection.request("POST", "/v1/chat/completions", BODY, JSON)
    finally:
        # The connection was never opened: nothing went out.
        assert connection.sock is None
    connection.getresponse()


def test_urllib3():
    urllib3.PoolManager().request("POST", URL + "/v1/chat/completions", body=BODY, headers=JSON)
"""


def test_a_replay_miss_fails_before_anything_is_sent(suite: Suite) -> None:
    suite.write("test_miss.py", MISSES)
    result = run(suite)
    result.assert_outcomes(failed=3)
    assert suite.upstream() == 0
    url = re.escape(suite.provider.url)
    misses = re.findall(
        rf"^pytest-llmcache: no recorded response for POST {url}/v1/chat/completions$",
        result.stdout.str(),
        flags=re.MULTILINE,
    )
    assert len(misses) == 3
    assert "--llm-cache=record" in result.stdout.str()
    assert not suite.cassettes()


REQUESTS = """
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

AUTH = {"authorization": f"Bearer {API_KEY}"}
CHAT = {"model": "gpt-fake", "messages": [{"role": "user", "content": "once"}]}


def test_two_calls():
    first = requests.post(URL + "/v1/chat/completions", json=CHAT, headers=AUTH)
    second = requests.get(URL + "/v1/models", headers=AUTH)
    save("two_calls", [first.json(), second.json(), second.headers["x-llm-cache-status"]])


def test_retried():
    retry = Retry(total=3, status_forcelist=[429], allowed_methods=None, backoff_factor=0)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        r = session.post(URL + "/flaky/v1/chat/completions", json=CHAT, headers=AUTH)
    save("retried", [r.status_code, r.json()])
"""


def test_requests_records_one_entry_per_call(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("requests")
    outcome = record_then_replay(suite, monkeypatch, REQUESTS, tests=2)
    outcome.same("retried")
    assert outcome.replayed["two_calls"][:2] == outcome.recorded["two_calls"][:2]
    assert [outcome.recorded["two_calls"][2], outcome.replayed["two_calls"][2]] == ["MISS", "HIT"]
    assert suite.provider.count("/flaky/v1/chat/completions") == 2
    # requests, urllib3 and http.client each saw the calls; one of them stored each.
    folder = "cassettes/test_scenarios/"
    assert outcome.cassettes[folder + "test_two_calls.yaml"].count("- key:") == 2
    retried = outcome.cassettes[folder + "test_retried.yaml"]
    assert retried.count("- key:") == 1
    (entry,) = Cassette.load(suite.path / folder / "test_retried.yaml")
    assert entry.to_response().status == 200, "the 429 answer is not stored"


LEFT_EARLY = """
import http.client
import time
import urllib.parse

import urllib3

STREAM = "/slow/v1/chat/completions?events=20&interval=0.5&via="
MORE = os.environ.get("READ_MORE") == "yes"
KEPT = []


def chat(text):
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": text}], "stream": True}


def test_urllib3_release_conn():
    with urllib3.PoolManager() as http:
        start = time.monotonic()
        url = URL + STREAM + "release"
        r = http.request("POST", url, json=chat("release"), preload_content=False)
        chunks = r.stream()
        read = [next(chunks).decode()]
        if MORE:
            read.append(next(chunks).decode())
        r.release_conn()
        # Kept open: giving the connection back is what says the caller left.
        KEPT.append(chunks)
        save("urllib3_release_conn", [read, time.monotonic() - start])


def test_urllib3_close():
    with urllib3.PoolManager() as http:
        start = time.monotonic()
        url = URL + STREAM + "close"
        r = http.request("POST", url, json=chat("close"), preload_content=False)
        chunks = r.stream()
        read = [next(chunks).decode()]
        r.close()
        KEPT.append(chunks)
        save("urllib3_close", [read, time.monotonic() - start])


def test_http_client_close():
    split = urllib.parse.urlsplit(URL)
    connection = http.client.HTTPConnection(split.hostname, split.port)
    start = time.monotonic()
    connection.request("POST", STREAM + "http.client", json.dumps(chat("http.client")))
    r = connection.getresponse()
    read = [r.read1().decode()]
    r.close()
    connection.close()
    KEPT.append(r)
    save("http_client_close", [read, time.monotonic() - start])
"""


def test_a_stream_left_early_is_stored_cut_short(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = record_then_replay(suite, monkeypatch, LEFT_EARLY, tests=3)
    names = ("urllib3_release_conn", "urllib3_close", "http_client_close")
    chunk_of = {}
    for name in names:
        (chunk,), recorded_seconds = outcome.recorded[name]
        chunk_of[f"cassettes/test_scenarios/test_{name}.yaml"] = chunk
        (replayed_chunk,), _ = outcome.replayed[name]
        assert replayed_chunk == chunk
        assert chunk.startswith("data: ")
        # The whole stream takes 9.5 seconds: leaving it returned at once.
        assert recorded_seconds < 3, name
    for name, text in outcome.cassettes.items():
        assert "\n  cut_short: true\n" in text, name
        (entry,) = Cassette.load(suite.path / name)
        assert entry.cut_short, name
        # Only the chunk read before leaving is stored, as the one event it is.
        assert entry.to_response().chunks == (chunk_of[name].encode(),), name
        assert "\n  response_sse: |\n    data: " in text, name
    # Closed, the stream ends at once at the server too (the connection given back with
    # release_conn stays open, as urllib3 leaves it).
    closed = [s for s in suite.provider.streams if not s.path.endswith("release")]
    assert len(closed) == 2
    for stream in closed:
        assert stream.client_gone.wait(5), stream.path
        assert not stream.completed
    # Replay serves what was read, and says so when the test now reads further.
    monkeypatch.setenv("READ_MORE", "yes")
    result = run(suite, "-k", "release_conn")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*was cut short*left after 1 chunk*"])
    assert suite.upstream() == outcome.upstream
