"""Network transports that build their connection pool only when a call first needs one.

An httpx or httpx2 ``HTTPTransport`` builds its pool, and with it an SSL context, when it is
made: tens of milliseconds each, and the import of the whole connection stack the first
time. A replayed call never reaches the pool, so while the cache is on a transport keeps its
arguments and builds itself on first use: a call that goes to the network, or any code that
looks inside it. Closing or entering one that never built anything does nothing.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["defer"]

_PENDING = "_llm_cache_pending"
_INERT = "_llm_cache_builds_lazily"
_lock = threading.RLock()


def defer(cls: Any, closers: tuple[str, ...], enters: tuple[str, ...]) -> Callable[[], None]:
    """Make ``cls`` build itself lazily; return the function that undoes it.

    ``closers`` and ``enters`` name the methods that do nothing on a transport never built
    (``close``, ``__exit__``; ``__enter__``, which returns the transport). Undoing restores
    ``__init__``; the other methods stay, as transports made meanwhile may still be unbuilt
    (closed, or collected, after the run), and they act only on those.
    """
    original_init = cls.__init__
    if not cls.__dict__.get(_INERT, False):
        _add_builders(cls, closers, enters)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self.__dict__[_PENDING] = (original_init, args, kwargs)

    cls.__init__ = __init__

    def undo() -> None:
        cls.__init__ = original_init

    return undo


def _add_builders(cls: Any, closers: tuple[str, ...], enters: tuple[str, ...]) -> None:
    saved = {name: cls.__dict__[name] for name in (*closers, *enters) if name in cls.__dict__}

    def __getattr__(self: Any, name: str) -> Any:
        # Only for an attribute not found: the transport's own, before it was built. Under
        # the lock, so that a thread asking while another builds waits for the result.
        if name.startswith("__"):
            raise AttributeError(name)
        with _lock:
            pending = self.__dict__.pop(_PENDING, None)
            if pending is not None:
                init, args, kwargs = pending
                init(self, *args, **kwargs)
        return object.__getattribute__(self, name)

    def idle(method: Any, result_self: bool) -> Any:
        if inspect.iscoroutinefunction(method):

            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if _PENDING in self.__dict__:
                    return self if result_self else None
                return await method(self, *args, **kwargs)

            return async_wrapper

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _PENDING in self.__dict__:
                return self if result_self else None
            return method(self, *args, **kwargs)

        return wrapper

    cls.__getattr__ = __getattr__
    for name, method in saved.items():
        setattr(cls, name, idle(method, name in enters))
    setattr(cls, _INERT, True)
