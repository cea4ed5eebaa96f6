"""The recorded call: the model every cassette format reads into and writes from.

An entry read from a large file is *lazy*: only its key is known until something else of it
is asked for, so replaying one entry of a 2,000-entry file parses that one entry. Its
``request`` and ``response`` (the stored forms of :mod:`._body`) are built on first use too:
a replay needs only the response's status, headers and chunks, which the file format gives
directly.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Protocol

from . import _body
from ._exchange import Headers, Response

__all__ = ["CassetteError", "Entry", "Format", "fill"]


class CassetteError(Exception):
    """A cassette cannot be read or written; the message names the file."""


# Response headers that differ on every call even when the answer does not; re-recording an
# identical answer keeps the stored entry, so the file changes by no byte.
_PER_CALL_HEADERS = frozenset(
    {
        "date",
        "age",
        "expires",
        "x-request-id",
        "request-id",
        "cf-ray",
        "server-timing",
        "openai-processing-ms",
        "x-envoy-upstream-service-time",
    }
)
_PER_CALL_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-", "ratelimit-")

_LAZY = frozenset({"recorded_at", "ttl", "duration", "test", "cut_short", "allow_secrets"})


def _stable(response: dict[str, Any]) -> dict[str, Any]:
    headers = {
        k: v
        for k, v in (response.get("headers") or {}).items()
        if k not in _PER_CALL_HEADERS and not k.startswith(_PER_CALL_PREFIXES)
    }
    return {**response, "headers": headers}


class Format(Protocol):
    """What a cassette format does for its lazy entries (each keeps its own ``source``)."""

    def fields(self, entry: Entry) -> None:
        """Set the entry's recorded_at, ttl, duration, test, cut_short and allow_secrets."""

    def request(self, entry: Entry) -> None:
        """Set the entry's request (method, URL, headers, stored body)."""

    def response(self, entry: Entry) -> None:
        """Set the entry's response (status, headers, stored body)."""

    def replay(self, entry: Entry) -> Response:
        """The response to replay, straight from the file's text."""

    def release(self, entry: Entry) -> None:
        """Forget what was decoded for the entry, if it can be decoded again."""


_set = object.__setattr__


def fill(entry: Entry, **fields: Any) -> None:
    """Set fields of an entry as read from its file (the entry stays unedited)."""
    for name, value in fields.items():
        object.__setattr__(entry, name, value)


class Entry:
    """One recorded call: the request it answers and the response to replay."""

    __slots__ = (
        "_edited",
        "_load",
        "_replay",
        "_source",
        "allow_secrets",
        "cut_short",
        "duration",
        "key",
        "recorded_at",
        "request",
        "response",
        "test",
        "ttl",
    )

    key: str
    recorded_at: str
    ttl: float | None
    duration: float
    request: dict[str, Any]
    """Method, URL, stored headers and the stored body of the request."""
    response: dict[str, Any]
    """Status, stored headers and the stored body (or chunks) of the response."""
    test: str | None
    """The node id of the test that recorded the entry (absent in older files)."""
    cut_short: bool
    """The caller left the stream early: the body holds only the chunks it read."""
    allow_secrets: tuple[str, ...]
    """The allow-list patterns its key-shaped values matched when it was recorded."""

    def __init__(
        self,
        key: str,
        recorded_at: str,
        ttl: float | None,
        duration: float,
        request: dict[str, Any],
        response: dict[str, Any],
        test: str | None = None,
        cut_short: bool = False,
        allow_secrets: tuple[str, ...] = (),
    ) -> None:
        self.key = key
        self.recorded_at = recorded_at
        self.ttl = ttl
        self.duration = duration
        self.request = request
        self.response = response
        self.test = test
        self.cut_short = cut_short
        self.allow_secrets = allow_secrets
        self._replay: Response | None = None
        self._load: Format | None = None
        self._source: Any = None
        self._edited = False

    @classmethod
    def lazy(cls, key: str, load: Format, source: Any) -> Entry:
        """An entry known by its key; ``load`` sets the rest when first needed.

        ``source`` is what the format keeps to do it; while it is set, the entry is as its
        file holds it (the format may write it back as it was read).
        """
        entry = cls.__new__(cls)
        # Once per entry of every file read: set directly, not through fill().
        _set(entry, "key", key)
        _set(entry, "_replay", None)
        _set(entry, "_load", load)
        _set(entry, "_source", source)
        _set(entry, "_edited", False)
        return entry

    def __setattr__(self, name: str, value: Any) -> None:
        # A field set after reading makes the entry differ from its text in the file.
        object.__setattr__(self, name, value)
        if name[0] != "_":
            object.__setattr__(self, "_edited", True)

    @property
    def edited(self) -> bool:
        """Whether a field was set since the entry was read (or made)."""
        return self._edited

    def __getattr__(self, name: str) -> Any:
        # Called only for a slot not set yet: a lazy entry's fields, on first use.
        if name in _LAZY:
            object.__getattribute__(self, "_load").fields(self)
        elif name == "request":
            object.__getattribute__(self, "_load").request(self)
        elif name == "response":
            object.__getattribute__(self, "_load").response(self)
        else:
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    @property
    def source(self) -> Any:
        """What the entry's format keeps to build its fields (``None``: built in memory)."""
        return self._source

    def recorded_datetime(self) -> datetime:
        """When the call was recorded, in UTC."""
        stamp = datetime.fromisoformat(self.recorded_at.replace("Z", "+00:00"))
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)

    def is_expired(self, now: datetime) -> bool:
        """Whether the entry is older than its TTL (never, without one)."""
        if self.ttl is None:
            return False
        return (now - self.recorded_datetime()).total_seconds() > self.ttl

    def to_response(self) -> Response:
        """The stored response as chunks and headers, decoded once and kept."""
        if self._replay is None:
            if self._load is not None:
                self._replay = self._load.replay(self)
            else:
                stored = self.response
                body = stored.get("body") or {}
                if "chunks" in body:
                    chunks = tuple(_body.decode_chunks(body["chunks"]))
                else:
                    chunks = (_body.decode_body(body),)
                headers: Headers = tuple(
                    (str(k), str(v)) for k, v in (stored.get("headers") or {}).items()
                )
                self._replay = Response(int(stored["status"]), headers, chunks)
        return self._replay

    def release(self) -> None:
        """Let go of the response and the text decoded from a file for it: its next use reads
        them again. (Replay uses most entries once; kept, they would only weigh on memory and
        on every garbage collection until the run ends.)"""
        if self._load is not None:
            _set(self, "_replay", None)
            self._load.release(self)

    def same_exchange(self, other: Entry) -> bool:
        """Whether two entries hold the same call and answer (timestamps, ids and owner aside)."""
        return (self.key, self.cut_short, self.request, _stable(self.response)) == (
            other.key,
            other.cut_short,
            other.request,
            _stable(other.response),
        )

    def with_test(self, test: str | None) -> Entry:
        """The same entry, recorded by ``test``."""
        return Entry(
            self.key,
            self.recorded_at,
            self.ttl,
            self.duration,
            self.request,
            self.response,
            test=test,
            cut_short=self.cut_short,
            allow_secrets=self.allow_secrets,
        )

    def to_data(self) -> dict[str, Any]:
        """The mapping of fields, in the order files show them (bodies in stored form)."""
        data: dict[str, Any] = {"key": self.key, "recorded_at": self.recorded_at}
        if self.ttl is not None:
            data["ttl"] = int(self.ttl) if float(self.ttl).is_integer() else self.ttl
        data["duration"] = self.duration
        if self.test is not None:
            data["test"] = self.test
        if self.cut_short:
            data["cut_short"] = True
        if self.allow_secrets:
            data["allow_secrets"] = list(self.allow_secrets)
        data["request"] = self.request
        data["response"] = self.response
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Entry:
        """An entry from its mapping (already validated)."""
        recorded = data["recorded_at"]
        if isinstance(recorded, datetime):
            recorded = recorded.isoformat()
        ttl = data.get("ttl")
        test = data.get("test")
        return cls(
            key=str(data["key"]),
            recorded_at=str(recorded),
            ttl=float(ttl) if ttl is not None else None,
            duration=float(data.get("duration") or 0.0),
            request=data["request"],
            response=data["response"],
            test=None if test is None else str(test),
            cut_short=data.get("cut_short") is True,
            allow_secrets=tuple(str(p) for p in data.get("allow_secrets") or ()),
        )

    def __repr__(self) -> str:
        return f"Entry(key={self.key!r})"
