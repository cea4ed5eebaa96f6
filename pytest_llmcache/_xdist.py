"""pytest-xdist: workers send their totals to the controller, which reports for the run."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["Controller"]


class Controller:
    """Hooks of the xdist controller: adds up what each worker did."""

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self.engine = engine

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        data = getattr(node, "workeroutput", {}).get("llm_cache")
        if data is not None:
            from ._stats import RunStats

            engine = self.engine()
            # Every worker of the run shares this id; the controller cleans up after it.
            engine.run_id = node.workerinput["testrunuid"]
            engine.stats.merge(RunStats.from_json(data))
