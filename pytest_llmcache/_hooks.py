"""Hooks users can implement in a conftest.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._exchange import Request

__all__ = ["pytest_llm_cache_normalize_request"]


@pytest.hookspec(firstresult=True)
def pytest_llm_cache_normalize_request(request: Request) -> Request | None:
    """Return a changed copy of ``request`` to hash and store instead of the original.

    Use it to drop what varies from run to run and that ``ignore_fields`` cannot reach, for
    example a timestamp inside a URL. ``Request`` is a frozen dataclass: build the copy with
    ``dataclasses.replace``. Return ``None`` to keep the request as it is.
    """
