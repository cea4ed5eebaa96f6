"""What the cache tells the user when a call cannot go as the test's marker promises.

Each message names what happened, the test and the cassette, and the command that fixes it;
every URL is shown without its credentials.
"""

from __future__ import annotations

from collections.abc import Callable

from ._exchange import Request
from ._secrets import redact_url

Fix = Callable[[str], str] | None
"""The command that runs the call again in a mode (default: the pytest command for the
test); a cassette block outside pytest says how to set the mode instead."""

__all__ = ["call", "command", "cut_short", "expired", "miss", "went_around"]

_TRANSPORT_FIX = (
    "  fix: give the client an httpx.HTTPTransport (or a transport that wraps one), fake it "
    "with httpx.MockTransport, or leave this test unmarked"
)


def call(request: Request) -> str:
    """A call as messages show it: no credential in its URL."""
    return f"{request.method} {redact_url(request.url)}"


def command(mode: str, nodeid: str) -> str:
    """The command that runs one test in ``mode``."""
    return f"pytest --llm-cache={mode} '{nodeid}'"


def miss(
    request: Request, nodeid: str, cassette: str, state: str, nearest: str, fix: Fix = None
) -> str:
    """No recorded answer in ``replay``: nothing was sent."""
    return (
        f"pytest-llmcache: no recorded response for {call(request)}\n"
        f"  test:     {nodeid}\n"
        f"  cassette: {cassette} ({state})\n"
        f"{nearest}"
        f"  mode:     replay (nothing was sent to the network)\n"
        f"  record it: {_fix(fix, 'record', nodeid)}\n"
        f"  or record only what is missing: {_fix(fix, 'auto', nodeid)}"
    )


def cut_short(request: Request, nodeid: str, cassette: str, chunks: int, fix: Fix = None) -> str:
    """A replay reads past the chunks of a recording whose stream was left early."""
    return (
        f"pytest-llmcache: the recording of {call(request)} was cut short: the stream was left "
        f"after {chunks} {'chunk' if chunks == 1 else 'chunks'} when it was recorded, and this "
        "run reads past them.\n"
        f"  test:     {nodeid}\n"
        f"  cassette: {cassette}\n"
        f"  re-record it: {_fix(fix, 'record', nodeid)}"
    )


def expired(
    request: Request, nodeid: str, cassette: str, recorded_at: str, ttl: float, fix: Fix = None
) -> str:
    """An expired entry replayed under ``--llm-cache-strict``."""
    return (
        f"pytest-llmcache: expired entry for {call(request)} "
        f"(recorded {recorded_at}, ttl {ttl:g}s) and --llm-cache-strict is on\n"
        f"  test:     {nodeid}\n"
        f"  cassette: {cassette}\n"
        f"  refresh it: {_fix(fix, 'auto', nodeid)}"
    )


def _fix(fix: Fix, mode: str, nodeid: str) -> str:
    return command(mode, nodeid) if fix is None else fix(mode)


def went_around(method: str, url: str, via: str, nodeid: str, connection: str | None) -> str:
    """A call sent through a transport the cache cannot see into.

    ``connection`` is where it was about to connect when it was stopped before sending;
    ``None`` when it was noticed after the call (a transport answering in process).
    """
    if connection is None:
        what = "so it may have reached the network and can be neither recorded nor replayed."
    else:
        what = (
            f"which opened a connection to {connection}. The connection was refused and "
            "nothing was sent: such a call can be neither recorded nor replayed."
        )
    return (
        f"pytest-llmcache: {method} {redact_url(url)} went around the cache: it was sent "
        f"through {via}, a transport pytest-llmcache cannot see into, {what}\n"
        f"  test: {nodeid}\n"
        f"{_TRANSPORT_FIX}"
    )
