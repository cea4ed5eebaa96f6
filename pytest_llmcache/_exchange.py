"""The HTTP exchange as the cache sees it, independent of the HTTP library that made it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


class Response:
    """A response to hand back to the client: status, headers and the body as its chunks.

    A plain class, not a dataclass as ``Request`` is (which users copy with
    ``dataclasses.replace``): making a dataclass costs every run about a millisecond, and
    this one is only the cache's own. Treat it as immutable.
    """

    __slots__ = ("chunks", "document", "headers", "past_end", "status")

    def __init__(
        self,
        status: int,
        headers: Headers,
        chunks: tuple[bytes, ...],
        past_end: Callable[[], NoReturn] | None = None,
        document: object = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.chunks = chunks
        self.past_end = past_end
        """For a recording cut short: called when the caller reads past its last chunk (it
        fails the test, saying so). ``None``: the body simply ends after the last chunk."""
        self.document = document
        """The body already parsed as JSON, when the cassette gave it so (``None``: not
        parsed): what reads the replayed usage need not parse it again. Not compared."""

    def _fields(self) -> tuple[object, ...]:
        return (self.status, self.headers, self.chunks, self.past_end)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Response:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Response(status={self.status!r}, headers={self.headers!r}, "
            f"chunks={self.chunks!r}, past_end={self.past_end!r})"
        )

    @property
    def body(self) -> bytes:
        """The whole body."""
        return b"".join(self.chunks)
