"""A local Realtime-like WebSocket server on 127.0.0.1, built on the ``websockets`` server.

Usage::

    with start_fake_realtime() as realtime:
        ...connect to realtime.url + "/realtime?model=fake-realtime"...
        assert realtime.count() == 1

On connect the server sends ``session.created``. Then, per client message:

``{"type": "session.update", ...}``
    ``session.updated`` echoing the session.
``{"type": "response.create", ...}``
    ``response.created``, one ``response.output_text.delta`` (and the older
    ``response.text.delta``) per word of the instructions, then ``response.done`` with
    ``usage.input_tokens`` / ``output_tokens``.
a binary message
    echoed back as binary.
other text
    echoed back as ``{"type": "echo", "text": ...}``.

Connections are counted (a replay must open none); the handshake headers are kept.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["FakeRealtime", "start_fake_realtime"]


class FakeRealtime:
    """The running server: its ``ws://`` URL and the connections it has served."""

    def __init__(self) -> None:
        self.url = ""
        self.handshakes: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Any = None

    def count(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self.handshakes)

    def reset(self) -> None:
        """Forget the connections served so far."""
        with self._lock:
            self.handshakes.clear()

    def __enter__(self) -> FakeRealtime:
        from websockets.asyncio.server import serve

        self._thread.start()

        async def start() -> Any:
            return await serve(self._session, "127.0.0.1", 0, compression=None)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _session(self, connection: Any) -> None:
        headers = {k.lower(): v for k, v in connection.request.headers.raw_items()}
        with self._lock:
            self.handshakes.append(headers)
        session: dict[str, Any] = {"id": "sess_1", "model": "fake-realtime"}
        await connection.send(_event("session.created", session=session))
        async for message in connection:
            if isinstance(message, bytes):
                await connection.send(message)
                continue
            try:
                event = json.loads(message)
            except ValueError:
                event = {}
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "session.update":
                session = {**session, **event.get("session", {})}
                await connection.send(_event("session.updated", session=session))
            elif kind == "response.create":
                for reply in _response(event.get("response") or {}):
                    await connection.send(reply)
            else:
                await connection.send(_event("echo", text=message))


def _event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"evt_{kind}", **fields})


def _response(options: dict[str, Any]) -> list[str]:
    words = str(options.get("instructions") or "hello there").split()
    response = {"id": "resp_1", "object": "realtime.response", "status": "in_progress"}
    replies = [_event("response.created", response=response)]
    for word in words:
        for kind in ("response.output_text.delta", "response.text.delta"):
            replies.append(
                _event(
                    kind,
                    response_id="resp_1",
                    item_id="item_1",
                    output_index=0,
                    content_index=0,
                    delta=word + " ",
                )
            )
    usage = {"total_tokens": 7 + len(words), "input_tokens": 7, "output_tokens": len(words)}
    done = {**response, "status": "completed", "output": [], "usage": usage}
    replies.append(_event("response.done", response=done))
    return replies


def start_fake_realtime() -> FakeRealtime:
    """A server to use in a ``with`` block: it listens inside and stops after."""
    return FakeRealtime()
