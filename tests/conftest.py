"""Fixtures shared by the suite: the local fake provider and a pytester helper around it."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_provider import FakeProvider, start_fake_provider

import pytest_llmcache

# In-process pytest runs forget the modules they imported; importing the SDKs once here
# spares every such run a second of re-importing them.
for _sdk in ("openai", "anthropic", "httpx2"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_sdk)

# The plugin imports its own modules lazily. Imported here, before any in-process run, they
# stay one set of modules for the whole session, as in a user's process; otherwise each run
# would load fresh copies next to the previous run's, whose patches it could not undo.
for _module in pkgutil.walk_packages(pytest_llmcache.__path__, "pytest_llmcache."):
    if _module.name != "pytest_llmcache.__main__":
        importlib.import_module(_module.name)


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    """One fake provider on 127.0.0.1 for the whole session."""
    with start_fake_provider() as fake:
        yield fake


@pytest.fixture
def fake(provider: FakeProvider) -> FakeProvider:
    """The fake provider with its request log emptied for this test."""
    provider.reset()
    return provider


class Suite:
    """A user's test suite in a temporary folder, run with pytest as the user runs it."""

    def __init__(self, pytester: pytest.Pytester, provider: FakeProvider) -> None:
        self.pytester = pytester
        self.provider = provider
        self.path = pytester.path

    def write(self, name: str, source: str) -> Path:
        """Write a file of the suite (source is dedented)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    def run(self, *args: str) -> pytest.RunResult:
        """Run pytest in the suite's folder, in this process, with only this plugin loaded.

        Other installed plugins (hypothesis, langsmith, ...) would be imported afresh by
        every in-process run and cost seconds each; ``test_entry_point`` covers loading
        the plugin the way pytest finds it.
        """
        return self.pytester.runpytest("-p", "pytest_llmcache.plugin", *args)

    def upstream(self) -> int:
        """Requests the fake provider served so far."""
        return self.provider.count()

    def cassettes(self) -> dict[str, str]:
        """Every cassette file under the suite, by relative path, with its text."""
        return {
            str(p.relative_to(self.path)): p.read_text("utf-8")
            for p in sorted(self.path.rglob("*.yaml"))
            if "cassettes" in p.parts
        }


@pytest.fixture(autouse=True)
def _same_output_on_every_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest prints whole failure messages in its short summary when it sees a CI: the
    suites these tests run print the same everywhere."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)


@pytest.fixture
def suite(pytester: pytest.Pytester, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Suite:
    """A fresh user suite whose tests reach the fake provider through ``FAKE_URL``."""
    monkeypatch.delenv("LLM_CACHE_MODE", raising=False)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("FAKE_URL", fake.url)
    return Suite(pytester, fake)
