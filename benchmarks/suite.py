"""Whole-suite figures: plugin start-up on 2,000 tests, and replaying 400 tests with xdist.

    python benchmarks/suite.py [--repeat 5]

Each figure is the best of ``--repeat`` runs of pytest in a subprocess, so imports and
collection are counted as a user sees them. Other installed plugins are switched off
(PYTEST_DISABLE_PLUGIN_AUTOLOAD) so only this plugin's cost is measured.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from replay import local_server

PLAIN_SUITE = """
import pytest

@pytest.mark.parametrize("n", range({count}))
def test_plain(n):
    assert n >= 0
"""

CALLING_SUITE = """
import os

import openai
import pytest

client = openai.OpenAI(api_key="sk-bench", base_url=os.environ["BENCH_URL"], max_retries=0)


@pytest.mark.llm_cache
@pytest.mark.parametrize("n", range({count}))
def test_chat(n):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": f"question {{n}}"}}]
    )
    assert reply.choices[0].message.content == f"Echo: question {{n}}"
"""


def best_of(repeat: int, args: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds of the fastest of ``repeat`` pytest runs; each must pass."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout[-2000:]}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("LLM_CACHE_MODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = root / "plain"
        plain.mkdir()
        (plain / "test_plain.py").write_text(textwrap.dedent(PLAIN_SUITE.format(count=2000)))
        without = best_of(repeat, [], plain, env)
        with_plugin = best_of(repeat, ["-p", "pytest_llmcache.plugin"], plain, env)
        print(
            f"2,000 tests with no calls: {without:.3f} s without the plugin, "
            f"{with_plugin:.3f} s with it ({(with_plugin - without) * 1e3:+.0f} ms)"
        )

        calling = root / "calling"
        calling.mkdir()
        (calling / "test_chat.py").write_text(textwrap.dedent(CALLING_SUITE.format(count=400)))
        plugin = ["-p", "pytest_llmcache.plugin", "-p", "xdist"]
        with local_server() as url:
            env["BENCH_URL"] = url
            best_of(1, [*plugin, "--llm-cache=record"], calling, env)
        serial = best_of(repeat, [*plugin, "-n", "0"], calling, env)
        parallel = best_of(repeat, [*plugin, "-n", "2"], calling, env)
        print(
            f"replay of 400 openai tests: {serial:.2f} s with -n 0, {parallel:.2f} s with -n 2 "
            f"({serial / parallel:.2f}x)"
        )


if __name__ == "__main__":
    main()
