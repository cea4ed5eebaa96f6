"""How each cached test ended: prune and strict judge no cassette of a test that did not pass.

A skipped, xfailed or failed test did not make all its calls, so its entries are not unused
and its cassettes are kept whole.
"""

from __future__ import annotations

import pytest

from ._paths import cassette_file, cassette_folder
from ._settings import Settings, resolve_test_options

__all__ = ["Outcomes", "module_folder"]


class Outcomes:
    """How each cached test ended: prune and strict judge no cassette of a test that did not
    pass (skipped, xfailed, failed), whose calls were not all made."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.collected: dict[str, pytest.Item] = {}
        """The cached tests collected, by node id."""
        self.passed: list[str] = []
        self.protected_paths: set[str] = set()
        self.protected_folders: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Note how a phase of a collected cached test ended."""
        item = self.collected.get(report.nodeid)
        if item is None:
            return
        if report.when == "call" and report.passed:
            self.passed.append(item.nodeid)
        elif (report.when == "call" or report.outcome != "passed") and report.when != "teardown":
            self._protect(item)

    def _protect(self, item: pytest.Item) -> None:
        """Keep what this test's cassettes may be: its own, and those its markers name."""
        settings = self.settings
        names: list[str | None] = [None]
        names += [
            str(m.kwargs["cassette"]).removesuffix(".yaml")
            for m in item.iter_markers("llm_cache")
            if isinstance(m.kwargs.get("cassette"), str)
        ]
        for name in names:
            self.protected_paths.add(
                cassette_file(
                    test_file=item.path,
                    nodeid=item.nodeid,
                    shared_name=name,
                    cassette_dir=settings.cassette_dir,
                    rootpath=item.config.rootpath,
                )
            )
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        defaults = resolve_test_options(settings, {}, [])
        for fixturedefs in definitions.values():
            if fixturedefs and fixturedefs[-1].scope != "function":
                # Its fixtures' cassettes too, wherever their files are.
                from ._fixtures import fixture_cassette

                path, _ = fixture_cassette(
                    fixturedefs[-1], None, defaults, settings.cassette_dir, item.config.rootpath
                )
                self.protected_folders.add(str(path.parent))
        config_fixture = definitions.get("llm_cache_config")
        if config_fixture and len(config_fixture) > 1:
            # A conftest's llm_cache_config may name its cassette: keep its whole folder.
            self.protected_folders.add(module_folder(item, settings))


def module_folder(item: pytest.Item, settings: Settings) -> str:
    """The cassette folder of the item's module (where orphans are looked for)."""
    return cassette_folder(item.path, settings.cassette_dir, item.config.rootpath)
