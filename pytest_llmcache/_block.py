"""A cassette for any block of code: evaluation scripts, notebooks, fixtures, part of a test.

::

    with pytest_llmcache.cassette("evals/cassettes/run.yaml", mode="auto", ttl="30d"):
        ...

    @pytest_llmcache.cassette("evals/cassettes/summaries.yaml")
    def summarise(): ...

Inside a cached pytest run, the block's calls go to its own cassette, counted in the run's
summary; outside pytest, a summary of the block is logged (logger ``pytest_llmcache``) and a
miss raises :class:`~pytest_llmcache.CacheMiss`. Nested blocks use the innermost cassette.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from . import _current
from ._settings import ENV_MODE, Mode, OptionError, Settings, parse_ttl

__all__ = ["cassette"]

log = logging.getLogger("pytest_llmcache")

F = TypeVar("F", bound=Callable[..., Any])

_outside_pytest: list[object] = []
"""Blocks open outside any pytest run: the adapters stay installed while there is one."""


class cassette:  # used like a function: ``with cassette(...)``
    """Record and replay the HTTP calls of a block of code (or of a function) in ``path``.

    ``mode`` is ``replay``, ``record``, ``auto`` or ``off``; without it, ``LLM_CACHE_MODE``,
    then the mode of the pytest run the block is in, then ``replay``. ``ttl``,
    ``ignore_fields``, ``match_headers``, ``allow_hosts`` and ``allow_secrets`` are the marker's
    keywords of the same names.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        mode: str | None = None,
        ttl: float | str | None = None,
        ignore_fields: Iterable[str] = (),
        match_headers: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
        allow_secrets: Iterable[str] = (),
    ) -> None:
        self.path = Path(path)
        self._mode = mode
        try:
            self._ttl = parse_ttl(ttl, "cassette(ttl=...)")
            if mode is not None:
                Mode.parse(mode, "cassette(mode=...)")
        except OptionError as exc:
            raise ValueError(f"pytest_llmcache.{exc}") from None
        self._ignore_fields = tuple(ignore_fields)
        self._match_headers = tuple(h.lower() for h in match_headers)
        self._allow_hosts = tuple(h.lower() for h in allow_hosts)
        self._allow_secrets = tuple(allow_secrets)
        self._open: list[tuple[Any, Any, bool]] = []

    def __enter__(self) -> Any:
        from . import _adapters
        from ._engine import Engine
        from ._settings import TestOptions

        outer = _current.running()
        env_mode = os.environ.get(ENV_MODE, "").strip()
        if self._mode is not None:
            mode = Mode.parse(self._mode, "cassette(mode=...)")
        elif env_mode:
            mode = Mode.parse(env_mode, f"environment variable {ENV_MODE}")
        elif outer is not None:
            mode = outer.engine.settings.mode
        else:
            mode = Mode.REPLAY
        path = self.path if self.path.is_absolute() else Path.cwd() / self.path
        engine = outer.engine if outer is not None and outer.engine.settings.mode is mode else None
        standalone = engine is None
        if engine is None:
            engine = Engine(Settings(mode=mode), display_root=Path.cwd())
        options = TestOptions(
            ttl=self._ttl,
            ignore_fields=self._ignore_fields,
            match_headers=self._match_headers,
            allow_hosts=self._allow_hosts,
            allow_secrets=self._allow_secrets,
        )
        name = f"cassette {engine.display(path)}"
        if mode is Mode.OFF:
            self._open.append((None, engine, standalone))
            return None
        if outer is None:
            _adapters.install()
            _outside_pytest.append(self)
        # Inside a test, the test's normalize hook applies to the block's calls too.
        test = engine.begin(
            name,
            options,
            str(path),
            test_id=f"cassette:{path.name}",
            normalize=outer.normalize if outer is not None else None,
        )
        test.fix = _fix_for(self.path, inside_pytest=outer is not None)
        self._open.append((test, engine, standalone))
        if outer is not None and not _inside(path, outer.engine.display_root):
            warnings.warn(
                f"pytest-llmcache: the cassette {path} is outside {outer.engine.display_root}",
                stacklevel=2,
            )
        return test

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        test, engine, standalone = self._open.pop()
        if test is None:
            return
        try:
            engine.end(test)
        finally:
            if self in _outside_pytest:
                _outside_pytest.remove(self)
                if not _outside_pytest and _current.running() is None:
                    from . import _adapters

                    _adapters.uninstall()
        if standalone:
            _log_summary(engine, test)

    def __call__(self, function: F) -> F:
        """Use as a decorator: each call of ``function`` runs in the cassette."""
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return run  # type: ignore[return-value]


def _fix_for(path: Path, *, inside_pytest: bool) -> Callable[[str], str]:
    def fix(mode: str) -> str:
        hint = f"cassette({str(path)!r}, mode={mode!r})"
        if inside_pytest:
            return f"pytest --llm-cache={mode} ... (or {hint})"
        return f"LLM_CACHE_MODE={mode} python ... (or {hint})"

    return fix


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _log_summary(engine: Any, test: Any) -> None:
    counts = test.counts
    where = engine.display(test.path)
    log.info(
        "pytest-llmcache: %s (mode %s): %d replayed, %d recorded, %d missed, %d expired%s",
        where,
        engine.settings.mode.value,
        counts.replayed,
        counts.recorded,
        counts.missed,
        counts.expired,
        "; written" if engine.stats.written else "",
    )
    if not _inside(Path(test.path), Path.cwd()):
        log.warning("pytest-llmcache: the cassette %s is outside %s", test.path, Path.cwd())
