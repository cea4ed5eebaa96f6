"""Record-then-replay harness for the client compatibility suite.

A scenario module is a user's test file: each test calls a real client against the fake
provider and saves what the caller saw (texts, stream chunks, headers) as JSON. The same
module runs twice, in ``record`` mode and then in the default ``replay`` mode; the harness
checks that the replay reached the provider zero times and returns both sets of results.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Suite

API_KEY = "test-secret-key-0123456789"
"""The key every scenario passes to its client: it must reach no cassette."""

PRELUDE = f"""
import asyncio
import json
import os
import pathlib

import pytest

URL = os.environ["FAKE_URL"]
OUT = pathlib.Path(os.environ["SCENARIO_OUT"])
API_KEY = {API_KEY!r}
MESSAGES = [{{"role": "user", "content": "tell me a story about seven small cats"}}]

pytestmark = pytest.mark.llm_cache


def save(name, value):
    OUT.mkdir(exist_ok=True)
    (OUT / f"{{name}}.json").write_text(json.dumps(value, default=str))
"""

FORBIDDEN = (API_KEY, "authorization", "x-api-key", "x-goog-api-key", "set-cookie", "fakecookie")


@dataclass
class Outcome:
    """What the scenarios saw while recording and while replaying."""

    recorded: dict[str, Any]
    replayed: dict[str, Any]
    upstream: int
    """Requests the provider served during the record run."""
    cassettes: dict[str, str]

    def same(self, *names: str) -> None:
        """Replay gave each named scenario exactly what recording gave it."""
        for name in names or tuple(self.recorded):
            assert self.replayed[name] == self.recorded[name], name


def run(suite: Suite, *args: str, plugins: tuple[str, ...] = ()) -> pytest.RunResult:
    """Run the user's suite in this process with only the named plugins loaded."""
    extra = [arg for plugin in ("pytest_llmcache.plugin", *plugins) for arg in ("-p", plugin)]
    return suite.pytester.runpytest(*extra, "-q", *args)


def record_then_replay(
    suite: Suite,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    *,
    tests: int,
    plugins: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
) -> Outcome:
    """Record ``source``'s tests, replay them offline, and return what each run saw.

    All ``tests`` must pass, but for those that skip themselves (a feature this version of
    the SDK lacks), which must skip in both runs.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    suite.write("test_scenarios.py", PRELUDE + textwrap.dedent(source))
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "record"))
    outcomes = run(suite, "--llm-cache=record", *args, plugins=plugins).parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == tests, outcomes
    upstream = suite.upstream()
    assert upstream > 0, "the record run reached the provider"
    monkeypatch.setenv("SCENARIO_OUT", str(suite.path / "replay"))
    replayed = run(suite, *args, plugins=plugins).parseoutcomes()
    for outcome in ("passed", "skipped"):
        assert replayed.get(outcome) == outcomes.get(outcome), (outcome, replayed, outcomes)
    assert suite.upstream() == upstream, "the replay run reached the provider"
    cassettes = suite.cassettes()
    everything = "\n".join(cassettes.values()).lower()
    for forbidden in FORBIDDEN:
        assert forbidden.lower() not in everything, forbidden
    return Outcome(_load(suite, "record"), _load(suite, "replay"), upstream, cassettes)


def _load(suite: Suite, folder: str) -> dict[str, Any]:
    return {
        path.stem: json.loads(path.read_text("utf-8"))
        for path in sorted((suite.path / folder).glob("*.json"))
    }
