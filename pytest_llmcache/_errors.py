"""The failures the cache raises into a test: ``BaseException``\\s no SDK retry loop catches."""

from __future__ import annotations

from _pytest.outcomes import Failed

__all__ = ["CacheMiss", "CacheRefusal", "ReplayMiss"]


class CacheMiss(BaseException):
    """A call the cache could not answer, in a test or in a ``cassette(...)`` block.

    A ``BaseException``, so no SDK retry loop catches it: catch it by this name.
    """


class ReplayMiss(Failed, CacheMiss):
    """A call the cache cannot answer in this mode, or must not let through.

    A ``BaseException`` (pytest's failure outcome), so no SDK retry loop can catch it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, pytrace=False)


class CacheRefusal(ReplayMiss):
    """A call refused before anything was sent: from a finished test, or to a blocked host."""


# Reports name an exception by its module: these are public as ``pytest_llmcache.<name>``.
for _public in (CacheMiss, ReplayMiss, CacheRefusal):
    _public.__module__ = "pytest_llmcache"
