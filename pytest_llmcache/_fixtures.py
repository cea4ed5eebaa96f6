"""Calls made while a session, package, module or class fixture is set up or torn down.

Such a fixture serves many tests, so its calls go to a cassette of its own, beside the file
that defines it: ``cassettes/<module>/fixture.<name>.yaml`` (``conftest`` for a conftest.py),
one per parameter of a parametrized fixture. ``@pytest_llmcache.cached(...)`` sets one
fixture's options (the marker's keywords; ``cassette`` names its file). Everything else
(modes, misses, the network guard, secrets, the summary) is as for a test.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from ._paths import safe_name
from ._settings import MARKER_KEYWORDS, OptionError, Settings, TestOptions, resolve_test_options

if TYPE_CHECKING:
    from ._engine import Engine, Normalizer, TestCache

__all__ = [
    "OPTIONS",
    "cached",
    "fixture_cache",
    "fixture_cassette",
    "fixture_options",
    "wants_cache",
]

OPTIONS = "__llm_cache_options__"
"""The attribute ``cached`` sets on a fixture function."""

_SCOPES = frozenset({"session", "package", "module", "class"})

F = TypeVar("F")


def cached(**options: object) -> Callable[[F], F]:
    """Set the cache options of one fixture (``ttl``, ``cassette``, ``ignore_fields``, ...).

    Put it on a fixture function, above or below ``@pytest.fixture``; it works on sync and
    async fixtures and on generators.
    """
    unknown = sorted(set(options) - set(MARKER_KEYWORDS))
    if unknown:
        raise TypeError(
            f"pytest_llmcache.cached: unknown keyword {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(MARKER_KEYWORDS)}"
        )
    try:
        resolve_test_options(Settings(), {}, [((), options)])
    except OptionError as exc:
        raise ValueError(f"pytest_llmcache.cached: {exc}") from None

    def decorate(function: F) -> F:
        target = _function_of(function)
        if target is None:
            raise TypeError(
                f"pytest_llmcache.cached goes on a fixture function, not on {function!r}"
            )
        setattr(target, OPTIONS, dict(options))
        return function

    return decorate


def _function_of(fixture: object) -> Any:
    """The function a fixture (or a function about to become one) runs."""
    wrapped = getattr(fixture, "_get_wrapped_function", None)  # pytest >= 8.4
    if callable(wrapped):
        return wrapped()
    wrapped = getattr(fixture, "__pytest_wrapped__", None)  # older pytest
    if wrapped is not None:
        return wrapped.obj
    if inspect.isfunction(fixture) or inspect.ismethod(fixture):
        return fixture
    return None


def wants_cache(fixturedef: Any) -> bool:
    """Whether calls in this fixture's set-up and teardown go to a cassette of its own."""
    return fixturedef.scope in _SCOPES


def fixture_options(settings: Settings, fixturedef: Any, item: pytest.Item) -> TestOptions:
    """The ini options, the item's ``llm_cache_config`` (when it takes no arguments), and
    the fixture's ``@cached`` options, in that order."""
    config: Mapping[str, object] = {}
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    configs = definitions.get("llm_cache_config")
    if configs:
        function = configs[-1].func
        if not inspect.signature(function).parameters:
            value = function()
            config = value if isinstance(value, Mapping) else {}
            # Only what applies to a fixture: it has no marker, and its own file.
            config = {k: v for k, v in config.items() if k != "cassette"}
    own = getattr(_defined(fixturedef), OPTIONS, {})
    return resolve_test_options(settings, config, [((), own)] if own else [])


def fixture_cassette(
    fixturedef: Any, request: Any, options: TestOptions, cassette_dir: Path | None, root: Path
) -> tuple[Path, str]:
    """The fixture's cassette, and its name as messages and entries give it."""
    function = _defined(fixturedef)
    source = Path(inspect.getsourcefile(function) or function.__code__.co_filename)
    module = source.stem
    if not _under(source, root):
        # A fixture of an installed plugin: its cassette lives in the project, not beside it.
        folder = (cassette_dir or root / "cassettes") / module
    elif cassette_dir is None:
        folder = source.parent / "cassettes" / module
    else:
        try:
            relative = source.parent.resolve().relative_to(root.resolve())
        except ValueError:
            relative = Path()
        folder = cassette_dir / relative / module
    name = fixturedef.argname
    param = _param_id(fixturedef, request)
    label = f"{name}[{param}]" if param is not None else name
    if options.cassette is not None:
        stem = options.cassette if param is None else f"{options.cassette}[{param}]"
    else:
        stem = f"fixture.{label}"
    return folder / f"{safe_name(stem)}.yaml", f"fixture {label} ({source.name})"


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _defined(fixturedef: Any) -> Any:
    """The fixture function as the user wrote it (pytest-asyncio, for one, wraps it)."""
    return inspect.unwrap(fixturedef.func)


def _param_id(fixturedef: Any, request: Any) -> str | None:
    if fixturedef.params is None or not hasattr(request, "param"):
        return None
    index = getattr(request, "param_index", 0)
    ids = fixturedef.ids
    if ids is not None and not callable(ids) and index < len(ids) and ids[index] is not None:
        return str(ids[index])
    param = request.param
    if isinstance(param, str | int | float | bool) or param is None:
        return str(param)
    return f"{fixturedef.argname}{index}"


@contextlib.contextmanager
def fixture_cache(
    engine: Engine,
    settings: Settings,
    fixturedef: Any,
    request: Any,
    item: pytest.Item,
    nodeid_of: Callable[[pytest.Item], str],
    normalize: Normalizer | None = None,
) -> Iterator[None]:
    """Around a fixture's set-up: its calls go to its cassette.

    Its teardown is wrapped too, by finalizers registered before and after the set-up
    (finalizers run last-in, first-out).
    """
    from . import _adapters

    # A mistake is reported once the fixture has run (with the suite's options): failing
    # before it runs would leave pytest's fixture state half made for the next test.
    problem = None
    try:
        options = fixture_options(settings, fixturedef, item)
    except OptionError as exc:
        problem = f"pytest-llmcache: fixture {fixturedef.argname}: {exc}"
        options = resolve_test_options(settings, {}, [])
    path, label = fixture_cassette(
        fixturedef, request, options, settings.cassette_dir, item.config.rootpath
    )
    problem = problem or _clash(item.config, path, fixturedef)
    _adapters.install()
    owner = f"fixture:{Path(path).parent.name}::{Path(path).stem}"
    user = nodeid_of(item)

    def begin(phase: str = "") -> TestCache:
        # Set-up and teardown own their entries apart: re-recording one keeps the other's.
        # (A named cassette is never "the test's own file", whose unowned entries it drops.)
        phased = options if not phase else options._replace(cassette=options.cassette or path.stem)
        test = engine.begin(
            label + phase, phased, str(path), test_id=owner + phase, normalize=normalize
        )
        test.fix = lambda mode: f"pytest --llm-cache={mode} --setup-only '{user}'"
        return test

    teardown: list[TestCache] = []

    def end_teardown() -> None:
        while teardown:
            engine.end(teardown.pop())

    fixturedef.addfinalizer(end_teardown)
    test = begin()
    try:
        yield
    finally:
        engine.end(test)
    fixturedef.addfinalizer(lambda: teardown.append(begin(" teardown")))
    if problem is not None:
        pytest.fail(problem, pytrace=False)


_CLAIMS: pytest.StashKey[dict[Path, str]] = pytest.StashKey()


def _clash(config: pytest.Config, path: Path, fixturedef: Any) -> str | None:
    """Two fixtures writing one cassette would replace each other's entries."""
    claims = config.stash.setdefault(_CLAIMS, {})
    who = f"{fixturedef.baseid or '<plugin>'}::{fixturedef.argname}"
    other = claims.setdefault(path, who)
    if other == who:
        return None
    return (
        f"pytest-llmcache: fixtures {other} and {who} would share the cassette {path}; "
        "give one of them its own with @pytest_llmcache.cached(cassette=...)"
    )
