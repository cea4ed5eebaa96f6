"""Four replay workloads, each a whole pytest suite, against the floor and a live server.

    python benchmarks/workloads.py [--rounds 5] [--only W1,W3] [--cold-only] [--json PATH]
    python benchmarks/workloads.py --instructions [--only W1,W3]

Each workload is a suite generated once in a temporary folder, recorded once with
``--llm-cache=record`` against a loopback OpenAI-compatible server (``examples/local_server.py``
in a process of its own), then run whole, as a subprocess, in three ways per round:

- floor: the same tests, the same openai client, on ``httpx2.MockTransport`` answering the
  bytes the server sent, from memory; the plugin is not loaded;
- replay: the plain client pointed at the server's URL, the plugin in its default mode;
- live: the same client calling the server, ``--llm-cache=off``.

Cold is as CI runs, from a fresh clone: ``-p no:cacheprovider`` and no bytecode for the test
files. Warm keeps ``.pytest_cache`` and bytecode between runs (one run fills them first).
The plugin's own modules are byte-compiled first, as pip does when it installs the package
from a wheel, so the plugin starts as the SDKs and pytest do (a source checkout installed
with ``pip install -e`` under ``PYTHONDONTWRITEBYTECODE=1`` compiles it on every run
instead: ``--no-compile`` measures that).
Each line gives the floor per call and what replay and live add to it per call, from the
medians (and the minimums) of the wall times of the rounds. Other installed pytest plugins
are switched off (PYTEST_DISABLE_PLUGIN_AUTOLOAD) so only this plugin's cost is measured;
this one is named in PYTEST_PLUGINS, and in the floor's runs a plugin that does nothing is, so
that both pay pytest's look-up of a plugin by name.
The plugin is used only through pytest's command line and markers. Nothing here is a test.

This machine's timings may wander by more than the plugin costs: ``--instructions`` runs
floor and replay once each, cold, under valgrind's callgrind instead, and gives what replay
adds in instructions, a count that does not change with the load of the machine.

    W1     200 tests x 5 chat completions, one cassette per test
    W2     1 test x 2,000 chat completions, one cassette
    W2-one 1 test replaying 1 entry of that 2,000-entry cassette
    W3     50 tests x 2 streamed chat completions of 200 chunks (figures per stream)
    W4     100 tests x 5 chat completions with openai.AsyncOpenAI
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("floor", "replay", "live")

# The floor answers from a dict filled once by a capture run that calls the server through
# a recording transport: the same bytes as the server's, split into the same SSE events.
CONFTEST = """
import os
import pickle

import httpx2
import openai
import pytest

CLIENT = os.environ["BENCH_CLIENT"]  # "mock", "url" or "capture"
URL = os.environ["BENCH_URL"]
ANSWERS_PATH = os.environ["BENCH_ANSWERS"]
ANSWERS = {}
if CLIENT == "mock":
    with open(ANSWERS_PATH, "rb") as file:
        ANSWERS = pickle.load(file)


def pytest_configure(config):
    # The floor runs without the plugin: its marker must still be known.
    config.addinivalue_line("markers", "llm_cache: cached by pytest-llmcache")


def pytest_sessionfinish(session):
    if CLIENT == "capture":
        with open(ANSWERS_PATH, "wb") as file:
            pickle.dump(ANSWERS, file)


class Chunks(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    async def __aiter__(self):
        for chunk in self.chunks:
            yield chunk


def answer(request):
    content_type, chunks = ANSWERS[request.content]
    headers = {"content-type": content_type}
    if len(chunks) == 1:
        return httpx2.Response(200, headers=headers, content=chunks[0])
    return httpx2.Response(200, headers=headers, stream=Chunks(chunks))


def keep(request, response, body):
    content_type = response.headers["content-type"]
    events = body.split(b"\\n\\n")
    chunks = [e + b"\\n\\n" for e in events if e] if "event-stream" in content_type else [body]
    ANSWERS[request.content] = (content_type, chunks)
    return httpx2.Response(response.status_code, headers=response.headers, content=body)


class Capture(httpx2.BaseTransport):
    def __init__(self):
        self.inner = httpx2.HTTPTransport()

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        return keep(request, response, response.read())


class AsyncCapture(httpx2.AsyncBaseTransport):
    def __init__(self):
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        return keep(request, response, await response.aread())


def make_client():
    if CLIENT == "url":
        return openai.OpenAI(api_key="sk-bench", base_url=URL, max_retries=0)
    transport = httpx2.MockTransport(answer) if CLIENT == "mock" else Capture()
    http_client = httpx2.Client(transport=transport)
    return openai.OpenAI(api_key="sk-bench", base_url=URL, max_retries=0, http_client=http_client)


def make_async_client():
    if CLIENT == "url":
        return openai.AsyncOpenAI(api_key="sk-bench", base_url=URL, max_retries=0)
    transport = httpx2.MockTransport(answer) if CLIENT == "mock" else AsyncCapture()
    http_client = httpx2.AsyncClient(transport=transport)
    return openai.AsyncOpenAI(
        api_key="sk-bench", base_url=URL, max_retries=0, http_client=http_client
    )


@pytest.fixture(scope="session")
def client():
    with make_client() as sync:
        yield sync


# One event loop for the session (a session-scoped backend and async fixture keep anyio's
# runner alive), so the async client, its connections and its TLS set-up are made once,
# as the sync client is: per-test client construction would swamp the per-call figures.
@pytest.fixture(scope="session")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
async def async_client():
    async with make_async_client() as client:
        yield client
"""

# Loaded by name in the floor's runs, as the plugin is in the others: looking a name up makes
# pytest read every installed distribution's entry points (with PYTEST_PLUGINS as with -p),
# which a suite that loads its plugins the usual way does once, with or without this one.
NULL_PLUGIN_NAME = "null_plugin"
NULL_PLUGIN = '''"""Does nothing: loaded by name in the floor's runs, in pytest-llmcache's place."""
'''

W1_MODULE = """
import pytest

pytestmark = pytest.mark.llm_cache


@pytest.mark.parametrize("n", range({first}, {last}))
def test_chat(client, n):
    for i in range(5):
        text = f"test {{n}} question {{i}}"
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": text}}]
        )
        assert reply.choices[0].message.content == "You said: " + text
"""

W2_MODULE = """
import pytest

pytestmark = pytest.mark.llm_cache(cassette="big")


def ask(client, i):
    text = f"question number {i} of the long conversation"
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    assert reply.choices[0].message.content == "You said: " + text


def test_many(client):
    for i in range(2000):
        ask(client, i)


def test_one(client):
    ask(client, 1234)
"""

# The server streams one chunk per word of "You said: <message>", plus a first chunk with the
# role and a last one with the finish reason: 196 words make 200 chunks.
W3_MODULE = """
import pytest

pytestmark = pytest.mark.llm_cache


@pytest.mark.parametrize("n", range({first}, {last}))
def test_stream(client, n):
    for i in range(2):
        text = " ".join(f"t{{n}}s{{i}}w{{k}}" for k in range(196))
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": text}}], stream=True
        )
        chunks = [chunk.choices[0].delta.content for chunk in stream]
        assert len(chunks) == 200
        assert "".join(c or "" for c in chunks) == "You said: " + text
"""

W4_MODULE = """
import pytest

pytestmark = [pytest.mark.llm_cache, pytest.mark.anyio]


@pytest.mark.parametrize("n", range({first}, {last}))
async def test_async_chat(async_client, n):
    for i in range(5):
        text = f"async test {{n}} question {{i}}"
        reply = await async_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": text}}]
        )
        assert reply.choices[0].message.content == "You said: " + text
"""


@dataclass(frozen=True)
class Workload:
    """One suite: its files, which tests to run, and how many calls a run makes."""

    name: str
    modules: dict[str, str]
    calls: int
    unit: str = "call"
    select: tuple[str, ...] = ()
    record_select: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()


def spread(name: str, template: str, tests: int, per_module: int) -> dict[str, str]:
    """``tests`` parametrized tests in modules of ``per_module``, as a suite of many files."""
    return {
        f"test_{name}_{start // per_module:02d}.py": template.format(
            first=start, last=min(start + per_module, tests)
        )
        for start in range(0, tests, per_module)
    }


WORKLOADS = (
    Workload("W1", spread("w1", W1_MODULE, 200, 20), calls=1000),
    Workload(
        "W2",
        {"test_big.py": W2_MODULE},
        calls=2000,
        select=("test_big.py::test_many",),
        record_select=("test_big.py::test_many",),
    ),
    Workload(
        "W2-one",
        {"test_big.py": W2_MODULE},
        calls=1,
        unit="run",
        select=("test_big.py::test_one",),
        record_select=("test_big.py::test_many",),
    ),
    Workload("W3", spread("w3", W3_MODULE, 50, 10), calls=100, unit="stream"),
    Workload(
        "W4", spread("w4", W4_MODULE, 100, 20), calls=500, plugins=("-p", "anyio.pytest_plugin")
    ),
)


@dataclass
class Run:
    """One pytest subprocess: wall and CPU seconds, peak resident memory."""

    wall: float
    cpu: float
    max_rss_kb: int
    instructions: int = 0


@dataclass
class Series:
    """The runs of one variant of one workload in one phase (cold or warm)."""

    runs: list[Run] = field(default_factory=list)

    def walls(self) -> list[float]:
        """Wall seconds of each run."""
        return [run.wall for run in self.runs]


@contextmanager
def loopback_server() -> Iterator[str]:
    """The example OpenAI-compatible server in a process of its own; yields its base URL."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from examples.local_server import LocalServer; "
        "server = LocalServer(0); print(server.url, flush=True); server.serve_forever()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait()


class Suite:
    """A generated workload folder and the way to run it as each variant."""

    def __init__(self, workload: Workload, folder: Path, url: str) -> None:
        """Write the suite's files into ``folder``."""
        self.workload = workload
        self.folder = folder
        self.url = url
        folder.mkdir(exist_ok=True)
        (folder / "conftest.py").write_text(textwrap.dedent(CONFTEST).lstrip())
        (folder / f"{NULL_PLUGIN_NAME}.py").write_text(NULL_PLUGIN)
        for name, source in workload.modules.items():
            (folder / name).write_text(textwrap.dedent(source).lstrip())

    def run(
        self, variant: str, cold: bool, *, record: bool = False, instructions: bool = False
    ) -> Run:
        """Run the suite once as ``variant`` (or "capture"); it must pass.

        ``instructions``: under valgrind's callgrind, whose count of the instructions run is
        kept in ``Run.instructions`` (the same for the same run, however busy the machine).
        """
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
        if instructions:
            args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args]
        args += self.workload.plugins
        env = {
            **os.environ,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "BENCH_URL": self.url,
            "BENCH_ANSWERS": str(self.folder.parent / f"{self.folder.name}.answers"),
            "BENCH_CLIENT": {"floor": "mock", "capture": "capture"}.get(variant, "url"),
            "PYTHONHASHSEED": "0",
        }
        env.pop("LLM_CACHE_MODE", None)
        if cold:
            args += ["-p", "no:cacheprovider"]
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            self.forget()
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        # Every run loads one plugin by name: this one, or in the floor's a plugin that does
        # nothing. Either way pytest reads every installed distribution's entry points to look
        # the name up (about 17 M instructions in the development venv), which a suite that
        # loads its plugins the usual way pays once, with or without this one.
        plugin = "pytest_llmcache.plugin" if variant in ("replay", "live") else NULL_PLUGIN_NAME
        env["PYTEST_PLUGINS"] = plugin
        if variant == "live":
            args.append("--llm-cache=off")
        if record:
            args.append("--llm-cache=record")
        args += self.workload.record_select if record else self.workload.select
        with tempfile.TemporaryFile() as output:
            start = time.perf_counter()
            process = subprocess.Popen(args, cwd=self.folder, env=env, stdout=output, stderr=output)
            # wait4 gives this child's own peak memory; RUSAGE_CHILDREN keeps the largest ever.
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                output.seek(0)
                tail = output.read()[-3000:].decode(errors="replace")
                raise SystemExit(f"{self.workload.name} {variant} failed in {self.folder}:\n{tail}")
            count = 0
            if instructions:
                output.seek(0)
                found = re.search(rb"Collected : (\d+)", output.read())
                assert found is not None, "valgrind printed no instruction count"
                count = int(found.group(1))
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, count)

    def forget(self) -> None:
        """Remove what a previous run left (pytest's cache, bytecode): a fresh clone's state."""
        shutil.rmtree(self.folder / ".pytest_cache", ignore_errors=True)
        shutil.rmtree(self.folder / "__pycache__", ignore_errors=True)


@dataclass
class Result:
    """The figures of one workload in one phase."""

    workload: str
    phase: str
    calls: int
    unit: str
    series: dict[str, Series]

    def per_call(self, variant: str, pick: str) -> float:
        """Seconds per call of ``variant`` from the median or the minimum of its runs."""
        walls = self.series[variant].walls()
        value = statistics.median(walls) if pick == "median" else min(walls)
        return value / self.calls

    def summary(self) -> dict[str, float]:
        """Floor per call and what replay and live add to it, in microseconds."""
        figures: dict[str, float] = {}
        for pick in ("median", "min"):
            floor = self.per_call("floor", pick)
            figures[f"floor_us_{pick}"] = floor * 1e6
            for variant in ("replay", "live"):
                added = self.per_call(variant, pick) - floor
                figures[f"{variant}_added_us_{pick}"] = added * 1e6
        # Round by round: each run less the floor's run of the same round, which saw the
        # same machine a few seconds apart (a shared machine drifts over minutes).
        floors = self.series["floor"].walls()
        for variant in ("replay", "live"):
            paired = [w - f for w, f in zip(self.series[variant].walls(), floors, strict=True)]
            figures[f"{variant}_added_us_paired"] = statistics.median(paired) / self.calls * 1e6
            # The middle half of the rounds: how far this machine lets one round stray.
            low, high = middle_half(paired)
            figures[f"{variant}_added_us_paired_low"] = low / self.calls * 1e6
            figures[f"{variant}_added_us_paired_high"] = high / self.calls * 1e6
        cpu = {v: [r.cpu for r in self.series[v].runs] for v in VARIANTS}
        median_cpu = {v: statistics.median(times) for v, times in cpu.items()}
        figures["replay_added_cpu_us_median"] = (
            (median_cpu["replay"] - median_cpu["floor"]) / self.calls * 1e6
        )
        paired_cpu = [r - f for r, f in zip(cpu["replay"], cpu["floor"], strict=True)]
        figures["replay_added_cpu_us_paired"] = statistics.median(paired_cpu) / self.calls * 1e6
        for variant in VARIANTS:
            peak = max(run.max_rss_kb for run in self.series[variant].runs)
            figures[f"{variant}_max_rss_mb"] = peak / 1024
        return figures

    def line(self) -> str:
        """The table line: floor per call, replay and live added, median then minimum."""
        s, unit = self.summary(), self.unit
        rounds = len(self.series["floor"].runs)
        return (
            f"{self.workload} {self.phase}: floor {s['floor_us_median'] / 1e3:.2f} ms/{unit}, "
            f"replay {added(s['replay_added_us_median'])}/{unit}, "
            f"live {added(s['live_added_us_median'])}/{unit} (median of {rounds}; "
            f"round by round: replay {added(s['replay_added_us_paired'])} "
            f"(middle half {added(s['replay_added_us_paired_low'])} to "
            f"{added(s['replay_added_us_paired_high'])}), "
            f"live {added(s['live_added_us_paired'])}; "
            f"min: floor {s['floor_us_min'] / 1e3:.2f} ms, "
            f"replay {added(s['replay_added_us_min'])}, live {added(s['live_added_us_min'])}; "
            f"replay CPU {added(s['replay_added_cpu_us_median'])}/{unit}, "
            f"{added(s['replay_added_cpu_us_paired'])} round by round; peak RSS floor "
            f"{s['floor_max_rss_mb']:.0f} MB, replay {s['replay_max_rss_mb']:.0f} MB)"
        )


def middle_half(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles of ``values`` (the value itself, for a single one)."""
    if len(values) < 2:
        return values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, high


def added(microseconds: float) -> str:
    """A signed duration in us, or in ms once it is large enough to read better that way."""
    return signed(microseconds, "us", "ms")


def signed(value: float, unit: str, thousand: str) -> str:
    """A signed figure in ``unit``, or in ``thousand`` of them from ten thousand on."""
    if abs(value) >= 10_000:
        return f"{value / 1e3:+.0f} {thousand}"
    return f"{value:+.0f} {unit}"


def measure(suite: Suite, phase: str, rounds: int) -> Result:
    """``rounds`` rounds of floor, replay and live, interleaved so all see the same machine."""
    cold = phase == "cold"
    series = {variant: Series() for variant in VARIANTS}
    if not cold:
        suite.forget()
        for variant in VARIANTS:  # fills .pytest_cache and the bytecode
            suite.run(variant, cold)
    for number in range(rounds):
        # Each round starts with a different variant, so none always runs after the same one.
        order = VARIANTS[number % 3 :] + VARIANTS[: number % 3]
        for variant in order:
            series[variant].runs.append(suite.run(variant, cold))
    workload = suite.workload
    return Result(workload.name, phase, workload.calls, workload.unit, series)


def count_instructions(suite: Suite) -> str:
    """One cold run of the floor and of replay under callgrind: what replay adds, counted in
    instructions (per call, and against the floor's whole run)."""
    with ThreadPoolExecutor(2) as pool:  # side by side: the counts do not mind
        runs = pool.map(lambda v: suite.run(v, cold=True, instructions=True), ("floor", "replay"))
        floor, replay = (run.instructions for run in runs)
    workload = suite.workload
    per_call = signed((replay - floor) / workload.calls / 1e3, "k", "M")
    return (
        f"{workload.name} instructions: floor {floor / 1e9:.2f} G, replay adds "
        f"{(replay - floor) / floor * 100:+.1f}% ({per_call} per {workload.unit})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W3 (W2 includes W2-one)")
    parser.add_argument("--cold-only", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave the plugin's modules without bytecode"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="instead of timing, count instructions under valgrind (one cold run of each)",
    )
    args = parser.parse_args()
    if not args.no_compile:
        compileall.compile_dir(ROOT / "pytest_llmcache", quiet=1)
    wanted = {name.strip().upper() for name in args.only.split(",")} if args.only else None
    chosen = [
        w for w in WORKLOADS if wanted is None or w.name.upper() in wanted or w.name[:2] in wanted
    ]
    if not chosen:
        parser.error(f"--only: choose among {', '.join(w.name for w in WORKLOADS)}")
    phases = ("cold",) if args.cold_only else ("cold", "warm")
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp, loopback_server() as url:
        prepared: dict[str, Suite] = {}
        for workload in chosen:
            folder = Path(tmp) / workload.name.split("-")[0]
            suite = Suite(workload, folder, url)
            first = folder.name not in prepared
            prepared[folder.name] = suite
            if first:  # W2-one shares W2's folder, answers and cassette
                suite.run("capture", cold=False)
                suite.run("replay", cold=False, record=True)
            if args.instructions:
                print(count_instructions(suite), flush=True)
                continue
            for phase in phases:
                result = measure(suite, phase, args.rounds)
                results.append(result)
                print(result.line(), flush=True)
    if args.json:
        document = [
            {**asdict(result), "summary": result.summary(), "python": sys.version.split()[0]}
            for result in results
        ]
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
