"""Which test an intercepted call belongs to.

The patches are process-wide, so the pointer to the running test is too: a test becomes the
running one when its cache turns on and stops being it when its cache turns off.

A call made by a thread or an asyncio task belongs to the test that was running when the
thread or task was started: for thread-pool work (``submit``, ``map``, ``run_in_executor``,
``asyncio.to_thread``) and coroutines handed to a loop in another thread
(``run_coroutine_threadsafe``), when the work was submitted, so a pool or a background loop
made by one test serves each later test in turn. The most specific stamp wins: the task, then
the work item, then the thread.

A call whose thread or task outlived its test is refused with :class:`CacheRefusal`, raised in
that thread or task: nothing is sent and nothing is recorded. It must not land in the cassette
of whichever test runs next, nor reach the network from an unmarked one; the test running
meanwhile is not failed (the call is not its own), and pytest reports the refusal if the
thread leaves it unhandled. The socket guard asks the same question, so a raw connection from
such a thread is refused too.

Threads and tasks started when no test was running (session set-up, a pool made by a session
fixture) belong to the running test, whichever it is. So do test runners that run every test's
coroutine in one long-lived task (anyio's pytest plugin) and worker threads that serve every
test in turn (anyio's): they belong to no test, or the second test's calls would be refused as
the first test's leftovers.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import _on_import
from ._errors import CacheRefusal

if TYPE_CHECKING:
    import asyncio  # bound at run time by _patch_asyncio, once the suite imports it

    from ._engine import TestCache

__all__ = [
    "Unseen",
    "begin",
    "current",
    "end",
    "handling",
    "install",
    "is_handling",
    "running",
    "uninstall",
    "unseen",
    "unseen_transport",
]

_NONE: Any = object()
"""The origin of a thread, task or work item started while no test was running."""
_UNSET: Any = object()

_running: TestCache | None = None
_open: list[TestCache] = []
"""Every cache turned on and not yet off, outermost first (a cassette block inside a test
is turned on over the test's own); the last is the running one."""
_tasks: weakref.WeakKeyDictionary[asyncio.Task[Any], Any] = weakref.WeakKeyDictionary()


class _WorkItem(threading.local):
    """The test a thread-pool work item was submitted by, while it runs in this thread."""

    # A class default: looking up a missing thread-local attribute costs as much as the
    # rest of a connection's check.
    origin: Any = _UNSET


_local = _WorkItem()

_handling: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llm_cache_handling", default=False
)


class Unseen:
    """A call on its way through a transport the cache cannot see into."""

    __slots__ = ("call", "via")  # a plain class: a named tuple costs more to define

    def __init__(self, via: str, call: str) -> None:
        self.via = via
        """The transport's class, as ``module.QualifiedName``."""
        self.call = call
        """``METHOD URL`` of the call."""

    def __repr__(self) -> str:
        return f"Unseen(via={self.via!r}, call={self.call!r})"


_unseen: contextvars.ContextVar[Unseen | None] = contextvars.ContextVar(
    "llm_cache_unseen", default=None
)

# Test runners that run every test's coroutine in one long-lived task, and worker threads
# that serve every test in turn (see the module docstring).
_RUNNER_COROUTINES = frozenset({"TestRunner._run_tests_and_fixtures"})
_POOL_THREAD_MODULES = ("anyio.",)


def begin(test: TestCache) -> None:
    """``test`` is now the running test (over any still open: it is the innermost)."""
    global _running
    _open.append(test)
    _running = test


def end(test: TestCache) -> None:
    """``test`` has finished; calls still made on its behalf are refused from now on.

    The cache it was turned on over, if any, is the running one again.
    """
    global _running
    if test in _open:
        _open.remove(test)
    _running = _open[-1] if _open else None


def running() -> TestCache | None:
    """The test running now, whoever is calling."""
    return _running


def current() -> TestCache | None:
    """The test the calling thread or task belongs to, or ``None`` when calls pass through.

    Raises :class:`CacheRefusal` for a call from a thread or task whose test has finished.
    """
    test = _running
    origin = _origin()
    if origin is _NONE or origin is test:
        return test
    if origin in _open:
        outer: TestCache = origin  # started by a cache still on, under an inner one
        return outer
    raise CacheRefusal(_refusal(origin, test))


def _origin() -> Any:
    """The test the caller was started by (``_NONE``: no test, or one not tracked)."""
    # The most specific first: a task (a loop may run inside a pool work item or a thread
    # that serves every test, as a background loop does), then the work item, then the thread.
    # No look-up while no task is stamped; once one is, asyncio is imported and patched.
    if _tasks and asyncio._get_running_loop() is not None:
        task = asyncio.current_task()
        if task is not None:
            found = _tasks.get(task, _UNSET)
            if found is not _UNSET:
                return found
    origin = _local.origin
    if origin is not _UNSET:
        return origin
    return getattr(threading.current_thread(), "_llm_cache_origin", _NONE)


def _origin_for_new() -> Any:
    """What a thread, task or work item started now belongs to."""
    origin = _origin()
    if origin is _NONE:
        return _NONE if _running is None else _running
    return origin


def _refusal(origin: TestCache, test: TestCache | None) -> str:
    now = f"during {test.nodeid}" if test is not None else "after it, outside any cached test"
    return (
        f"pytest-llmcache: refused a call from a thread or task started by {origin.nodeid}, "
        f"which has finished (the call came {now}). Nothing was sent and nothing was "
        "recorded: a call must land in the cassette of the test that made it.\n"
        f"  fix: wait for (join, await or cancel) background work before {origin.nodeid} ends"
    )


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Mark the calls made inside as already in the cache's hands (one adapter per call).

    requests sends through urllib3, which sends through ``http.client``: the outermost
    adapter decides, the ones below pass the call on untouched.
    """
    token = _handling.set(True)
    try:
        yield
    finally:
        _handling.reset(token)


def is_handling() -> bool:
    """Whether an adapter further up is handling the call being made."""
    return _handling.get()


@contextlib.contextmanager
def unseen(via: str, call: str) -> Iterator[None]:
    """Mark the connections opened inside as made for ``call`` (``METHOD URL``) by ``via``,
    a transport the cache cannot see into: the socket guard refuses them."""
    token = _unseen.set(Unseen(via, call))
    try:
        yield
    finally:
        _unseen.reset(token)


def unseen_transport() -> Unseen | None:
    """The unseen transport a connection is being made through, unless an adapter took over."""
    return None if _handling.get() else _unseen.get()


# -- carrying the origin into threads, pools and tasks ------------------------------------

Undo = Callable[[], None]
_undo: list[Undo] = []


def install() -> None:
    """Stamp threads, thread-pool work and asyncio tasks with the test that started them.

    The thread pool and asyncio are patched now if they are imported, or else as soon as
    their import finishes (before anything can use them): a suite that never uses them does
    not pay for importing them.
    """
    if _undo:
        return
    _undo.append(_patch_threads())
    waiting = {name: [functools.partial(_patch_now, patch)] for name, patch in _ON_IMPORT.items()}
    _undo.append(_on_import.when_imported(waiting))


def _patch_now(patch: Callable[[], Undo]) -> None:
    _undo.append(patch())


def uninstall() -> None:
    """Stop stamping."""
    while _undo:
        _undo.pop()()


def _patch_threads() -> Undo:
    thread_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if not type(self).__module__.startswith(_POOL_THREAD_MODULES):
            self._llm_cache_origin = _origin_for_new()  # type: ignore[attr-defined]
        thread_start(self)

    def undo() -> None:
        threading.Thread.start = thread_start  # type: ignore[method-assign]

    threading.Thread.start = start  # type: ignore[method-assign]
    return undo


def _patch_pool() -> Undo:
    from concurrent.futures.thread import ThreadPoolExecutor

    submit = ThreadPoolExecutor.submit

    def pool_submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        # A pool's threads serve whoever submits: the work item carries its submitter.
        return submit(self, _run_as, _origin_for_new(), fn, *args, **kwargs)

    def undo() -> None:
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]

    ThreadPoolExecutor.submit = pool_submit  # type: ignore[method-assign,assignment]
    return undo


def _patch_asyncio() -> Undo:
    global asyncio  # _origin and _carried use it once a task is stamped
    import asyncio

    create_task = asyncio.BaseEventLoop.create_task
    run_threadsafe = asyncio.run_coroutine_threadsafe

    def loop_create_task(self: Any, coro: Any, *args: Any, **kwargs: Any) -> Any:
        task = create_task(self, coro, *args, **kwargs)
        code = getattr(coro, "cr_code", None)
        if code is None or code.co_qualname not in _RUNNER_COROUTINES:
            origin = _origin_for_new()
            if origin is not _NONE:
                _tasks[task] = origin
        return task

    def threadsafe(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
        # The task is created in the loop's thread, which may serve every test (a background
        # loop): it belongs to the submitter instead.
        if not asyncio.iscoroutine(coro):
            return run_threadsafe(coro, loop)
        return run_threadsafe(_carried(_origin_for_new(), coro), loop)

    def undo() -> None:
        asyncio.BaseEventLoop.create_task = create_task  # type: ignore[method-assign]
        asyncio.run_coroutine_threadsafe = asyncio.tasks.run_coroutine_threadsafe = run_threadsafe

    asyncio.BaseEventLoop.create_task = loop_create_task  # type: ignore[method-assign]
    asyncio.run_coroutine_threadsafe = asyncio.tasks.run_coroutine_threadsafe = threadsafe
    return undo


_ON_IMPORT: dict[str, Callable[[], Undo]] = {
    "concurrent.futures.thread": _patch_pool,
    "asyncio": _patch_asyncio,
}
"""What to patch in each module the suite may import late, by module name."""


def _run_as(origin: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    previous = _local.origin
    _local.origin = origin
    try:
        return fn(*args, **kwargs)
    finally:
        _local.origin = previous


async def _carried(origin: Any, coro: Any) -> Any:
    task = asyncio.current_task()
    if task is not None:
        _tasks[task] = origin
    return await coro
