"""The HTTP exchange as the cache sees it, independent of the HTTP library that made it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

__all__ = ["Headers", "Request", "Response"]

Headers = tuple[tuple[str, str], ...]
"""Header pairs in wire order; names are lower-case."""


@dataclass(frozen=True, slots=True)
class Request:
    """An outgoing request: what the key is computed from."""

    method: str
    url: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Response:
    """A response to hand back to the client: status, headers and the body as its chunks."""

    status: int
    headers: Headers
    chunks: tuple[bytes, ...]
    past_end: Callable[[], NoReturn] | None = None
    """For a recording cut short: called when the caller reads past its last chunk (it fails
    the test, saying so). ``None``: the body simply ends after the last chunk."""
    document: object = field(default=None, compare=False, repr=False)
    """The body already parsed as JSON, when the cassette gave it so (``None``: not parsed):
    what reads the replayed usage need not parse it again."""

    @property
    def body(self) -> bytes:
        """The whole body."""
        return b"".join(self.chunks)
