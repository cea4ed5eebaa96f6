"""Replay cost per call against the floor: the same openai client on an in-memory transport.

    python benchmarks/replay.py [--calls 2000] [--rounds 5]

Prints, per cassette size, the median cost of one chat completion replayed from a cassette,
the cost of the same call on ``httpx2.MockTransport`` (no cache, no network: the floor), and
their ratio; then a 200-chunk stream, the first load of a large cassette, and the overhead
of recording a live call. Nothing here is a test: run it apart from the suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam

from pytest_llmcache import _adapters
from pytest_llmcache._engine import Engine
from pytest_llmcache._settings import Mode, Settings, TestOptions


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1767225600,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Echo: " + content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
    ).encode()


def stream_events(count: int) -> list[bytes]:
    events = []
    for i in range(count):
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}],
        }
        events.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every keep-alive response waits for a delayed ACK

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in stream_events(200):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = completion(body["messages"][-1]["content"])
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def local_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def per_call(run: Callable[[int], None], calls: int, rounds: int) -> float:
    """Fastest over ``rounds`` of the mean seconds per call (the least disturbed round)."""
    samples = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        for i in range(calls):
            run(i)
        samples.append((time.perf_counter() - start) / calls)
    return min(samples)


def interleaved(
    replay: Callable[[int], None],
    floor: Callable[[int], None],
    activate: Callable[[], AbstractContextManager[object]],
    calls: int,
    rounds: int,
) -> tuple[float, float]:
    """Replay and floor timed in alternating rounds, so both see the same machine.

    The cache is active only around the replay rounds: the floor pays nothing for it.
    """
    replayed, floored = [], []
    for _ in range(rounds):
        with activate():
            replayed.append(per_call(replay, calls, 1))
        floored.append(per_call(floor, calls, 1))
    return min(replayed), min(floored)


def messages(i: int) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": f"question number {i}"}]


@contextmanager
def cache(
    mode: Mode, path: Path, parse_cache: Path | None = None, engine: Engine | None = None
) -> Iterator[Engine]:
    """One test's worth of caching; pass ``engine`` to stay in the same run."""
    engine = engine or Engine(Settings(mode=mode), parse_cache=parse_cache)
    _adapters.install()
    test = engine.begin("bench::replay", TestOptions(), str(path))
    try:
        yield engine
    finally:
        engine.end(test)


def record(url: str, path: Path, entries: int) -> None:
    client = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0)
    with cache(Mode.RECORD, path):
        for i in range(entries):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls, rounds = args.calls, args.rounds

    # The floor answers with prepared bytes: no parsing, no lookup, nothing to beat.
    prepared = completion("question number 0")

    def mock_handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=prepared, headers={"content-type": "application/json"})

    floor_client = openai.OpenAI(
        api_key="sk-bench",
        base_url="http://127.0.0.1:9/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(mock_handler)),
    )
    with tempfile.TemporaryDirectory() as tmp, local_server() as url:
        root = Path(tmp)
        # Replay goes through the client's real transport, with the URL it was recorded at.
        live_client = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        for size in (10, 2000):
            path = root / f"chat_{size}.yaml"
            record(url, path, size)
            with cache(Mode.REPLAY, path):
                live_client.chat.completions.create(model="gpt-4o-mini", messages=messages(0))

            def replay(i: int, size: int = size) -> None:
                live_client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages(i % size)
                )

            def floor(i: int, size: int = size) -> None:
                floor_client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages(i % size)
                )

            # One run: the cassette is read once, as in a suite, then replayed round by round.
            run = Engine(Settings(mode=Mode.REPLAY))
            replayed, floor_cost = interleaved(
                replay, floor, partial(cache, Mode.REPLAY, path, engine=run), calls, rounds
            )
            print(
                f"chat, {size:>5} entries: replay {replayed * 1e3:.3f} ms/call, "
                f"floor {floor_cost * 1e3:.3f} ms/call, ratio {replayed / floor_cost:.2f}x"
            )

        big = root / "chat_2000.yaml"
        size_mb = big.stat().st_size / 1e6
        start = time.perf_counter()
        with cache(Mode.REPLAY, big) as engine:
            engine.cassette(str(big))
        cold = time.perf_counter() - start
        parse_cache = root / "parse-cache"
        parse_cache.mkdir()
        with cache(Mode.REPLAY, big, parse_cache) as engine:
            engine.cassette(str(big))
        start = time.perf_counter()
        with cache(Mode.REPLAY, big, parse_cache) as engine:
            engine.cassette(str(big))
        warm = time.perf_counter() - start
        print(
            f"load of a 2,000-entry cassette ({size_mb:.1f} MB): first run {cold * 1e3:.0f} ms, "
            f"later runs {warm * 1e3:.0f} ms (parse cache)"
        )

        # A 200-chunk stream: replayed vs the same chunks from MockTransport.
        events = stream_events(200)

        class Chunks(httpx2.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                return iter(events)

        def stream_handler(request: httpx2.Request) -> httpx2.Response:
            # The same 200 chunks, from memory: what a replay cannot beat.
            return httpx2.Response(
                200, stream=Chunks(), headers={"content-type": "text/event-stream"}
            )

        stream_floor = openai.OpenAI(
            api_key="sk-bench",
            base_url="http://127.0.0.1:9/v1",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(stream_handler)),
        )
        stream_path = root / "stream.yaml"
        with cache(Mode.RECORD, stream_path):
            chunks = list(
                live_client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages(0), stream=True
                )
            )
        assert len(chunks) == 200

        def read_stream(client: openai.OpenAI) -> Callable[[int], None]:
            def run(i: int) -> None:
                for _ in client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages(0), stream=True
                ):
                    pass

            return run

        stream_calls = max(calls // 20, 20)
        replay_stream, floor_stream = interleaved(
            read_stream(live_client),
            read_stream(stream_floor),
            partial(cache, Mode.REPLAY, stream_path, engine=Engine(Settings(mode=Mode.REPLAY))),
            stream_calls,
            rounds,
        )
        print(
            f"stream of 200 chunks: replay {replay_stream * 1e3:.3f} ms, floor "
            f"{floor_stream * 1e3:.3f} ms, added {(replay_stream - floor_stream) * 1e3:+.3f} ms"
        )

        # Recording overhead on a live loopback call.
        def live_call(i: int) -> None:
            live_client.chat.completions.create(model="gpt-4o-mini", messages=messages(i))

        live_calls = max(calls // 10, 50)
        recording, plain = interleaved(
            live_call,
            live_call,
            partial(
                cache, Mode.RECORD, root / "overhead.yaml", engine=Engine(Settings(Mode.RECORD))
            ),
            live_calls,
            rounds,
        )
        print(
            f"live call on loopback: {plain * 1e3:.3f} ms plain, {recording * 1e3:.3f} ms "
            f"recording ({(recording / plain - 1) * 100:+.1f}%)"
        )
    _adapters.uninstall()


if __name__ == "__main__":
    main()
