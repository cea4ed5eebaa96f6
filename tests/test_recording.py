"""What recording stores and what it refuses: gzip, retries, errors, streams, repeats."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette, Entry

pytest.importorskip("openai")


def only_entry(suite: Suite) -> Entry:
    """The one entry of the one cassette the suite recorded."""
    (name,) = suite.cassettes()
    (entry,) = Cassette.load(suite.path / name)
    return entry


def test_gzip_is_stored_decoded_and_replays_through_the_sdk(suite: Suite) -> None:
    suite.write(
        "test_gz.py",
        """
        import os, openai, pytest

        @pytest.mark.llm_cache
        def test_embed():
            client = openai.OpenAI(api_key="k", base_url=os.environ["FAKE_URL"] + "/gzip/v1")
            result = client.embeddings.create(model="e", input="abc", encoding_format="float")
            assert len(result.data[0].embedding) == 4
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert suite.provider.requests[0].path.startswith("/gzip")
    (text,) = suite.cassettes().values()
    assert "content-encoding" not in text
    assert '"embedding": [\n' in text, "the decoded JSON is stored as JSON text"
    body = only_entry(suite).response["body"]
    assert len(body["json"]["data"][0]["embedding"]) == 4
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1


def test_a_429_is_never_stored_and_the_sdk_retry_is(suite: Suite) -> None:
    suite.write(
        "test_flaky.py",
        """
        import os, openai, pytest

        @pytest.mark.llm_cache
        def test_chat():
            client = openai.OpenAI(
                api_key="k", base_url=os.environ["FAKE_URL"] + "/flaky/v1", max_retries=2
            )
            messages = [{"role": "user", "content": "hi"}]
            reply = client.chat.completions.create(model="m", messages=messages)
            assert reply.choices[0].message.content == "Echo: hi"
        """,
    )
    result = suite.run("--llm-cache=record")
    result.assert_outcomes(passed=1)
    assert suite.upstream() == 2, "429 then success"
    (text,) = suite.cassettes().values()
    assert text.count("- key:") == 1
    # Every stored status, read from the response blocks (a port may hold "429" too).
    assert re.findall(r"\n  response: \|\n    (\d+)\n", text) == ["200"]
    assert only_entry(suite).to_response().status == 200
    result.stdout.fnmatch_lines(["*1 recorded*1 not stored (429/5xx)*"])
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 2


def test_a_server_error_is_not_written(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    suite.write(
        "test_500.py",
        """
        import os, httpx, pytest

        BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

        @pytest.mark.llm_cache
        def test_fails_then_succeeds():
            base = os.environ["FAKE_URL"]
            if os.environ["CALL_500"] == "yes":
                failed = httpx.post(base + "/fail500/v1/chat/completions", json=BODY)
                assert failed.status_code == 500
            ok = httpx.post(base + "/v1/chat/completions", json=BODY)
            assert ok.json()["choices"][0]["message"]["content"] == "Echo: hi"
            assert ok.headers.get("x-llm-cache-status") == os.environ["EXPECT_STATUS"]
        """,
    )
    monkeypatch.setenv("CALL_500", "yes")
    monkeypatch.setenv("EXPECT_STATUS", "MISS")
    recorded = suite.run("--llm-cache=record")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["*1 recorded*1 not stored (429/5xx)*"])
    assert suite.upstream() == 2
    (text,) = suite.cassettes().values()
    assert text.count("- key:") == 1, "only the success is stored"
    assert "fail500" not in text
    assert "\n    500\n" not in text
    assert only_entry(suite).to_response().status == 200
    # Offline: the success replays from the cassette...
    monkeypatch.setenv("CALL_500", "no")
    monkeypatch.setenv("EXPECT_STATUS", "HIT")
    suite.run().assert_outcomes(passed=1)
    # ... and the 500 has no entry to replay.
    monkeypatch.setenv("CALL_500", "yes")
    missed = suite.run()
    missed.assert_outcomes(failed=1)
    missed.stdout.fnmatch_lines(["*no recorded response for POST*/fail500/v1/chat/completions*"])
    assert suite.upstream() == 2


def test_client_errors_are_stored(suite: Suite) -> None:
    suite.write(
        "test_404.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_missing():
            response = httpx.get(os.environ["FAKE_URL"] + "/v1/nothing-here")
            assert response.status_code == 404
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1
    assert "\n  response: |\n    404\n" in next(iter(suite.cassettes().values()))
    assert only_entry(suite).to_response().status == 404


def test_a_miss_fails_at_once_without_sdk_retries(suite: Suite) -> None:
    suite.write(
        "test_miss.py",
        """
        import os, time, openai, pytest

        @pytest.mark.llm_cache
        def test_chat():
            client = openai.OpenAI(api_key="k", base_url=os.environ["FAKE_URL"] + "/v1",
                                   max_retries=5)
            try:
                client.chat.completions.create(model="m", messages=[])
            except Exception as exc:  # what an SDK or a test could catch
                pytest.fail(f"caught {exc!r}")
        """,
    )
    result = suite.run()
    result.assert_outcomes(failed=1)
    assert "caught" not in result.stdout.str()
    # Once in the failure report: the SDK did not retry into a second miss. (The short
    # summary repeats the message when CI is set, so it is left out of the count.)
    report = result.stdout.str().split("short test summary info")[0]
    assert report.count("no recorded response for POST") == 1
    assert suite.upstream() == 0


def test_a_swallowed_miss_still_fails_the_test(suite: Suite) -> None:
    suite.write(
        "test_swallow.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_chat():
            try:
                httpx.get(os.environ["FAKE_URL"] + "/v1/models")
            except BaseException:
                pass
        """,
    )
    result = suite.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no recorded response for GET*"])


def test_repeated_identical_requests_replay_in_order_then_the_last_repeats(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write(
        "test_repeat.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_same_question_again_and_again():
            # /counter: the provider's n-th answer to the same request says "answer #n".
            url = os.environ["FAKE_URL"] + "/counter/v1/chat/completions"
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            answers = [
                httpx.post(url, json=body).json()["choices"][0]["message"]["content"]
                for _ in range(int(os.environ["REPEAT"]))
            ]
            print("ANSWERS", [a.removeprefix("Echo: hi ") for a in answers])
        """,
    )
    monkeypatch.setenv("REPEAT", "3")
    recorded = suite.run("--llm-cache=record", "-s")
    recorded.assert_outcomes(passed=1)
    assert "ANSWERS ['(answer #1)', '(answer #2)', '(answer #3)']" in recorded.stdout.str()
    (text,) = suite.cassettes().values()
    assert text.count("- key:") == 3
    monkeypatch.setenv("REPEAT", "5")
    replayed = suite.run("-s")
    replayed.assert_outcomes(passed=1)
    expected = "['(answer #1)', '(answer #2)', '(answer #3)', '(answer #3)', '(answer #3)']"
    assert "ANSWERS " + expected in replayed.stdout.str(), "in order, then the last repeats"
    assert suite.upstream() == 3


def test_the_order_of_repeated_answers_is_kept(suite: Suite) -> None:
    suite.write(
        "test_order.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_counter():
            url = os.environ["FAKE_URL"] + "/counter/v1/chat/completions"
            answers = []
            for content in ["a", "b", "a", "a"]:
                body = {"model": "m", "messages": [{"role": "user", "content": content}]}
                answers.append(httpx.post(url, json=body).json()["choices"][0]["message"])
            print("ANSWERS", [a["content"] for a in answers])
        """,
    )
    recorded = suite.run("--llm-cache=record", "-s")
    recorded.assert_outcomes(passed=1)
    expected = (
        "ANSWERS ['Echo: a (answer #1)', 'Echo: b (answer #1)', "
        "'Echo: a (answer #2)', 'Echo: a (answer #3)']"
    )
    assert expected in recorded.stdout.str()
    replayed = suite.run("-s")
    replayed.assert_outcomes(passed=1)
    assert expected in replayed.stdout.str()
    assert suite.upstream() == 4
    (text,) = suite.cassettes().values()
    assert text.count("- key:") == 4


def test_in_process_transports_are_left_alone(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write(
        "test_mock.py",
        """
        import os, httpx, pytest

        @pytest.mark.llm_cache
        def test_mock_transport(llm_cache):
            transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": 1}))
            with httpx.Client(transport=transport) as client:
                mocked = client.get("https://example.invalid/")
            assert mocked.json() == {"ok": 1}
            assert "x-llm-cache-status" not in mocked.headers
            assert llm_cache.counts.replayed == llm_cache.counts.missed == 0
            assert llm_cache.counts.recorded == 0
            # The same test's call over a network transport does go through the cache.
            with httpx.Client() as client:
                real = client.get(os.environ["FAKE_URL"] + "/v1/models")
            assert len(real.json()["data"]) == 3
            assert real.headers.get("x-llm-cache-status") == os.environ["EXPECT_STATUS"]
            counts = llm_cache.counts
            print("COUNTS", counts.recorded, counts.replayed, counts.missed)
        """,
    )
    monkeypatch.setenv("EXPECT_STATUS", "MISS")
    recorded = suite.run("--llm-cache=record", "-s")
    recorded.assert_outcomes(passed=1)
    recorded.stdout.fnmatch_lines(["*COUNTS 1 0 0"])
    assert suite.upstream() == 1
    (text,) = suite.cassettes().values()
    assert text.count("- key:") == 1
    assert "example.invalid" not in text
    monkeypatch.setenv("EXPECT_STATUS", "HIT")
    replayed = suite.run("-s")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*COUNTS 0 1 0"])
    assert suite.upstream() == 1, "replayed with no request to the provider"


@pytest.fixture
def trickle_server() -> Iterator[tuple[str, threading.Event]]:
    """An SSE server that sends its second event only after the client saw the first."""
    seen_first = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            conn.sendall(head)
            for number, event in enumerate([b"data: one\n\n", b"data: two\n\n"]):
                if number and not seen_first.wait(10):
                    return
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            conn.sendall(b"0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/stream", seen_first
    seen_first.set()
    thread.join(5)
    listener.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_caller_gets_stream_chunks_as_they_arrive_while_recording(
    suite: Suite,
    trickle_server: tuple[str, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
    flavour: str,
) -> None:
    url, seen_first = trickle_server
    monkeypatch.setenv("TRICKLE_URL", url)
    # The server holds back the second event until the client has the first: a recorder
    # that buffered the whole body would wait forever (here: the 10 s guard, then fail).
    monkeypatch.setattr("builtins.SEEN_FIRST", seen_first, raising=False)
    suite.write(
        "test_trickle.py",
        """
        import asyncio, builtins, os, httpx, pytest

        @pytest.mark.llm_cache
        def test_stream():
            if os.environ["FLAVOUR"] == "sync":
                with httpx.stream("GET", os.environ["TRICKLE_URL"]) as response:
                    chunks = []
                    for chunk in response.iter_bytes():
                        chunks.append(chunk)
                        builtins.SEEN_FIRST.set()
            else:
                async def run():
                    async with httpx.AsyncClient() as client:
                        async with client.stream("GET", os.environ["TRICKLE_URL"]) as response:
                            out = []
                            async for chunk in response.aiter_bytes():
                                out.append(chunk)
                                builtins.SEEN_FIRST.set()
                            return out
                chunks = asyncio.run(run())
            assert chunks == [b"data: one\\n\\n", b"data: two\\n\\n"]
        """,
    )
    monkeypatch.setenv("FLAVOUR", flavour)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (text,) = suite.cassettes().values()
    assert "\n  response_sse: |\n    data: one\n\n    data: two\n" in text
    assert only_entry(suite).to_response().chunks == (b"data: one\n\n", b"data: two\n\n")
    suite.run().assert_outcomes(passed=1)
