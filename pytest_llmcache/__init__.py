"""pytest-llmcache: record LLM API calls once, replay them in every test run."""

from __future__ import annotations

from ._cassette import Cassette, CassetteError, Entry
from ._engine import ReplayMiss, TestCache
from ._exchange import Request, Response
from ._settings import Mode, Settings
from ._stats import Counts

__all__ = [
    "Cassette",
    "CassetteError",
    "Counts",
    "Entry",
    "Mode",
    "ReplayMiss",
    "Request",
    "Response",
    "Settings",
    "TestCache",
    "__version__",
]

__version__ = "0.1.0"
