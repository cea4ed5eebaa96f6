"""A call belongs to the test that started its thread, task or thread-pool work item.

Work left running by a finished test is refused (nothing sent, nothing recorded) instead of
landing in the cassette of whichever test runs next; a pool or loop shared by tests serves
each test in turn; anyio's runner task, shared by tests on purpose, belongs to none of them.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from conftest import Suite
from scenarios import run

PRELUDE = """
import asyncio
import json
import os
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

URL = os.environ["FAKE_URL"]
OUT = pathlib.Path(os.environ["SCENARIO_OUT"])


def save(name, value):
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(value))


def body(text):
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": text}]}


def chat(text):
    return httpx.post(URL + "/v1/chat/completions", json=body(text)).status_code


async def achat(text):
    async with httpx.AsyncClient() as client:
        return (await client.post(URL + "/v1/chat/completions", json=body(text))).status_code
"""

LATE_THREAD = """
GO = threading.Event()
DONE = threading.Event()
SEEN = {{}}


def late_call():
    GO.wait(10)
    try:
        SEEN["late"] = f"sent: {{chat('late call')}}"
    except BaseException as exc:
        SEEN["late"] = str(exc)
    finally:
        DONE.set()


@pytest.mark.llm_cache
def test_a():
    threading.Thread(target=late_call, daemon=True).start()


{marker}
def test_b():
    GO.set()
    assert DONE.wait(10)
    save("late", SEEN["late"])
    assert chat("own call") == 200
"""

SHARED = """
pytestmark = pytest.mark.llm_cache

POOL = ThreadPoolExecutor(max_workers=1)  # one worker thread serves both tests
LOOP = asyncio.new_event_loop()  # its default executor too


def test_pool_one():
    assert POOL.submit(chat, "pool one").result() == 200


def test_pool_two():
    assert POOL.submit(chat, "pool two").result() == 200


def test_to_thread_one():
    assert LOOP.run_until_complete(asyncio.to_thread(chat, "to_thread one")) == 200


def test_to_thread_two():
    assert LOOP.run_until_complete(asyncio.to_thread(chat, "to_thread two")) == 200


def background_loop():
    # Started by the first test that needs it, then serving every test (as SDKs' sync
    # wrappers do).
    global BACKGROUND
    if BACKGROUND is None:
        BACKGROUND = asyncio.new_event_loop()
        threading.Thread(target=BACKGROUND.run_forever, daemon=True).start()
    return BACKGROUND


def pooled_loop():
    # The same, run as a thread-pool work item that never ends.
    global POOLED
    if POOLED is None:
        POOLED = asyncio.new_event_loop()
        ThreadPoolExecutor(max_workers=1).submit(POOLED.run_forever)
    return POOLED


BACKGROUND = POOLED = None


def teardown_module():
    for loop in (BACKGROUND, POOLED):
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)  # or the pool's exit waits for it forever


def test_background_one():
    call = asyncio.run_coroutine_threadsafe(achat("background one"), background_loop())
    assert call.result(10) == 200


def test_background_two():
    call = asyncio.run_coroutine_threadsafe(achat("background two"), background_loop())
    assert call.result(10) == 200


def test_pooled_loop_one():
    call = asyncio.run_coroutine_threadsafe(achat("pooled_loop one"), pooled_loop())
    assert call.result(10) == 200


def test_pooled_loop_two():
    call = asyncio.run_coroutine_threadsafe(achat("pooled_loop two"), pooled_loop())
    assert call.result(10) == 200
"""

LATE_TASK = """
pytestmark = pytest.mark.llm_cache

LOOP = asyncio.new_event_loop()
LATE = {}


async def late_call(go):
    await go.wait()
    try:
        return f"sent: {await achat('late task')}"
    except BaseException as exc:
        return str(exc)


def test_a():
    LATE["go"] = asyncio.Event()
    LATE["task"] = LOOP.create_task(late_call(LATE["go"]))


def test_b():
    async def run():
        LATE["go"].set()
        save("late", await LATE["task"])
        assert await achat("own call") == 200

    LOOP.run_until_complete(run())
"""

ANYIO = """
pytestmark = [pytest.mark.llm_cache, pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def client():
    # Holding anyio's runner for the module: every test's coroutine runs in its one task.
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def lazy_client(request):
    # Set up while the first test's cache is on, so the runner task is started then.
    return request.getfixturevalue("client")


async def test_first(lazy_client):
    assert await achat("anyio one") == 200


async def test_second(lazy_client):
    answer = await lazy_client.post(URL + "/v1/chat/completions", json=body("anyio two"))
    assert answer.status_code == 200
"""

IMPORTED_LATE = """
import json
import os
import pathlib
import sys
import urllib.request

import pytest

pytestmark = pytest.mark.llm_cache

URL = os.environ["FAKE_URL"]
OUT = pathlib.Path(os.environ["SCENARIO_OUT"])
LATE = {}


def save(name, value):
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(value))


def chat(text):
    body = {"model": "gpt-fake", "messages": [{"role": "user", "content": text}]}
    request = urllib.request.Request(
        URL + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return response.status


async def late_call(go):
    await go.wait()
    try:
        return f"sent: {chat('late task')}"
    except BaseException as exc:
        return str(exc)


def test_one():
    save("before", [m for m in ("asyncio", "concurrent.futures.thread") if m in sys.modules])
    import asyncio  # first imported now, while this test's cache is on
    from concurrent.futures import ThreadPoolExecutor

    LATE["pool"] = ThreadPoolExecutor(max_workers=1)  # its one thread serves both tests
    assert LATE["pool"].submit(chat, "pool one").result() == 200
    LATE["loop"] = asyncio.new_event_loop()
    LATE["go"] = asyncio.Event()
    LATE["task"] = LATE["loop"].create_task(late_call(LATE["go"]))


def test_two():
    assert LATE["pool"].submit(chat, "pool two").result() == 200

    async def release():
        LATE["go"].set()
        save("late", await LATE["task"])

    LATE["loop"].run_until_complete(release())
    LATE["loop"].close()
    LATE["pool"].shutdown()
"""


@pytest.fixture
def out(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> Suite:
    """The suite, with the folder its tests save what they saw to."""
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "out"))
    return suite


def served(suite: Suite) -> list[str]:
    """The user message of each chat the fake provider served, in order."""
    return [
        json.loads(r.body)["messages"][0]["content"]
        for r in suite.provider.requests
        if r.path.endswith("/v1/chat/completions")
    ]


def cassette(suite: Suite, module: str, test: str) -> str:
    return suite.cassettes().get(f"cassettes/{module}/{test}.yaml", "")


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_a_thread_outliving_its_test_is_refused(out: Suite, marked: bool) -> None:
    source = LATE_THREAD.format(marker="@pytest.mark.llm_cache" if marked else "")
    out.write("test_late.py", PRELUDE + textwrap.dedent(source))
    run(out, "--llm-cache=record").assert_outcomes(passed=2)
    late = json.loads((out.path / "out" / "late.json").read_text())
    when = "during test_late.py::test_b" if marked else "after it, outside any cached test"
    assert late.startswith(
        "pytest-llmcache: refused a call from a thread or task started by "
        f"test_late.py::test_a, which has finished (the call came {when}). Nothing was sent "
        "and nothing was recorded"
    ), late
    assert served(out) == ["own call"]
    recorded = cassette(out, "test_late", "test_b")
    assert ("own call" in recorded) is marked
    assert "late call" not in recorded
    assert cassette(out, "test_late", "test_a") == ""


def test_a_shared_pool_or_loop_serves_each_test_in_turn(out: Suite) -> None:
    out.write("test_shared.py", PRELUDE + textwrap.dedent(SHARED))
    run(out, "--llm-cache=record").assert_outcomes(passed=8)
    calls = [
        f"{way} {n}"
        for way in ("pool", "to_thread", "background", "pooled_loop")
        for n in ("one", "two")
    ]
    assert served(out) == calls
    for text in calls:
        test = f"test_{text.replace(' ', '_')}"
        recorded = cassette(out, "test_shared", test)
        assert text in recorded, test
        assert recorded.count("- key: ") == 1, test  # its own call, and nothing else
    run(out, "--llm-cache=replay").assert_outcomes(passed=8)
    assert out.upstream() == 8


def test_a_task_outliving_its_test_on_a_shared_loop_is_refused(out: Suite) -> None:
    out.write("test_loop.py", PRELUDE + textwrap.dedent(LATE_TASK))
    run(out, "--llm-cache=record").assert_outcomes(passed=2)
    late = json.loads((out.path / "out" / "late.json").read_text())
    assert late.startswith(
        "pytest-llmcache: refused a call from a thread or task started by test_loop.py::test_a, "
        "which has finished (the call came during test_loop.py::test_b)"
    ), late
    assert served(out) == ["own call"]
    assert "late task" not in cassette(out, "test_loop", "test_b")


def test_anyio_tests_share_its_runner_task(out: Suite) -> None:
    out.write("test_anyio.py", PRELUDE + textwrap.dedent(ANYIO))
    plugins = ("anyio.pytest_plugin",)
    run(out, "--llm-cache=record", plugins=plugins).assert_outcomes(passed=2)
    assert served(out) == ["anyio one", "anyio two"]
    assert "anyio one" in cassette(out, "test_anyio", "test_first")
    assert "anyio two" in cassette(out, "test_anyio", "test_second")
    run(out, "--llm-cache=replay", plugins=plugins).assert_outcomes(passed=2)
    assert out.upstream() == 2


def test_a_pool_or_task_of_a_module_imported_late_is_attributed(out: Suite) -> None:
    # In a process of its own: here asyncio and the thread pool were imported long ago.
    out.write("test_late_import.py", IMPORTED_LATE)
    result = out.pytester.runpytest_subprocess(
        "-p", "pytest_llmcache.plugin", "-p", "no:cacheprovider", "--llm-cache=record"
    )
    result.assert_outcomes(passed=2)
    assert json.loads((out.path / "out" / "before.json").read_text()) == []
    late = json.loads((out.path / "out" / "late.json").read_text())
    assert late.startswith(
        "pytest-llmcache: refused a call from a thread or task started by "
        "test_late_import.py::test_one, which has finished"
    ), late
    assert served(out) == ["pool one", "pool two"]
    assert "pool two" in cassette(out, "test_late_import", "test_two")
    assert "late task" not in cassette(out, "test_late_import", "test_two")
