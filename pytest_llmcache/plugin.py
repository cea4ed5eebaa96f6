"""pytest hooks and fixtures; each hands off at once to the module that owns the idea.

Only the settings are read at start-up. The cache itself (engine, cassettes, YAML, the HTTP
adapters) is imported when the first cached test runs, so a suite, or a run, without cached
tests pays next to nothing for the plugin.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from . import _hooks
from ._outcomes import Outcomes, module_folder
from ._paths import cassette_file
from ._settings import (
    Mode,
    OptionError,
    Settings,
    TestOptions,
    resolve_settings,
    resolve_test_options,
)

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from ._audit import Audit
    from ._engine import Engine, Normalizer, TestCache
    from ._exchange import Request

_SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()
_ENGINE: pytest.StashKey[Engine] = pytest.StashKey()
_TEST: pytest.StashKey[TestCache] = pytest.StashKey()
_HOOKED: pytest.StashKey[bool] = pytest.StashKey()
_AUDIT: pytest.StashKey[Audit | None] = pytest.StashKey()
_PRUNE_FOLDERS: pytest.StashKey[set[str]] = pytest.StashKey()
_PARTIAL: pytest.StashKey[bool] = pytest.StashKey()
_OUTCOMES: pytest.StashKey[Outcomes] = pytest.StashKey()
_OPTIONS: pytest.StashKey[dict[tuple[int, ...], tuple[list[Any], TestOptions]]] = pytest.StashKey()
_OWN_CONFIG: pytest.StashKey[dict[int, tuple[object, bool]]] = pytest.StashKey()
_NORMALIZERS: pytest.StashKey[dict[Path, Normalizer]] = pytest.StashKey()
_ACTIVATION = "_llm_cache_activation"

_IniType = Literal["string", "bool", "linelist"]
_INI: tuple[tuple[str, _IniType, str, Any], ...] = (
    ("llm_cache_mode", "string", "replay, record, auto or off (default: replay)", None),
    ("llm_cache_dir", "string", "root folder for cassettes (default: beside each test)", None),
    ("llm_cache_ttl", "string", "default ttl of new entries: 3600, 1h, 7d (default: none)", None),
    ("llm_cache_strict", "bool", "fail tests on expired entries (default: false)", False),
    ("llm_cache_all_tests", "bool", "cache every test, marked or not (default: false)", False),
    ("llm_cache_ignore_fields", "linelist", "JSON body fields left out of every key", []),
    ("llm_cache_match_headers", "linelist", "extra request headers put into every key", []),
    ("llm_cache_prices", "linelist", "'<model> <$/1M input> <$/1M output>' per line", []),
    ("llm_cache_allow_hosts", "linelist", "hosts replayed tests may still connect to", []),
    ("llm_cache_block_loopback", "bool", "replay refuses loopback connections too", False),
    (
        "llm_cache_fail_on_drift",
        "bool",
        "fail the run when re-recording changes an answer or its shape",
        False,
    ),
    (
        "llm_cache_allow_secrets",
        "linelist",
        "key-shaped values (or * patterns) that are no keys",
        [],
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llm-cache", "record and replay LLM API calls (pytest-llmcache)")
    group.addoption(
        "--llm-cache",
        dest="llm_cache_mode",
        metavar="MODE",
        default=None,
        help="replay (default): serve recorded responses, a miss fails and nothing touches "
        "the network; record: call the provider and rewrite the cassettes; auto: replay, "
        "recording only what is missing or expired; off: disable the plugin. "
        "Also set by LLM_CACHE_MODE or the llm_cache_mode ini option.",
    )
    group.addoption(
        "--llm-cache-strict",
        action="store_true",
        default=False,
        help="fail tests that replay expired entries (for a scheduled freshness job).",
    )
    group.addoption(
        "--llm-cache-prune",
        action="store_true",
        default=False,
        help="after a complete, passing run, remove recorded entries no test replayed and "
        "cassette files no collected test owns.",
    )
    group.addoption(
        "--llm-cache-fail-on-drift",
        action="store_true",
        default=False,
        help="fail the run when a re-recorded answer, or the shape of a response, changed "
        "(record and auto; for a scheduled refresh that must not change behaviour silently).",
    )
    group.addoption(
        "--llm-cache-report",
        metavar="PATH",
        default=None,
        help="write the run's cache figures (counts, tokens and seconds saved) as JSON.",
    )
    group.addoption(
        "--llm-cache-dir",
        metavar="DIR",
        default=None,
        help="root folder for cassettes (default: a cassettes/ folder beside each test file).",
    )
    for name, kind, help_text, default in _INI:
        parser.addini(name, help_text, type=kind, default=default)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "llm_cache(ttl=None, cassette=None, ignore_fields=(), match_headers=(), "
        "match_api_key=False, allow_hosts=(), allow_secrets=()): record and replay the HTTP "
        "calls of this test "
        "(pytest-llmcache).",
    )
    try:
        config.stash[_SETTINGS] = resolve_settings(
            cli_mode=config.getoption("llm_cache_mode"),
            cli_strict=config.getoption("llm_cache_strict"),
            cli_dir=_from_invocation_dir(config, config.getoption("llm_cache_dir")),
            cli_prune=config.getoption("llm_cache_prune"),
            cli_report=_from_invocation_dir(config, config.getoption("llm_cache_report")),
            cli_fail_on_drift=config.getoption("llm_cache_fail_on_drift"),
            env=os.environ,
            ini={name: config.getini(name) for name, *_ in _INI},
            rootpath=config.rootpath,
        )
    except OptionError as exc:
        raise pytest.UsageError(f"pytest-llmcache: {exc}") from None
    # How each cached test ends, from its reports (a plugin of its own, as it hears them).
    outcomes = config.stash[_OUTCOMES] = Outcomes(config.stash[_SETTINGS])
    config.pluginmanager.register(outcomes, "llm_cache_outcomes")
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        from ._xdist import Controller

        config.pluginmanager.register(Controller(lambda: _engine(config)), "llm_cache_xdist")


def _engine(config: pytest.Config) -> Engine:
    """The run's engine, made when the first cached test needs it."""
    engine = config.stash.get(_ENGINE, None)
    if engine is None:
        from ._engine import Engine

        cache = getattr(config, "cache", None)
        worker = getattr(config, "workerinput", None)
        engine = config.stash[_ENGINE] = Engine(
            config.stash[_SETTINGS],
            parse_cache=cache.mkdir("llm-cache") if cache is not None else None,
            display_root=config.invocation_params.dir,
            run_id=worker["testrunuid"] if worker else None,
        )
    return engine


def pytest_unconfigure(config: pytest.Config) -> None:
    if _ENGINE in config.stash:
        from . import _adapters

        _adapters.uninstall()


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS, None)
    return None if settings is None else f"llm-cache: mode={settings.mode.value}"


def _wants_cache(item: pytest.Item, settings: Settings) -> bool:
    return settings.all_tests or item.get_closest_marker("llm_cache") is not None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Turns the cache on for a cached test, before any of its fixtures is set up.

    It runs after pytest's skip and xfail checks (which run first) and before pytest sets up
    the fixtures (its own set-up runs after this plugin's). Tests whose ``llm_cache_config``
    is overridden turn it on from a fixture instead (see below).
    """
    if item.stash.get(_HOOKED, False):
        _turn_on(item, _options(item, item.config.stash[_SETTINGS]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    """Turns the cache off once all of the test's teardown ran (a module fixture torn down
    with the last test of its module turns its own cassette on over the test's)."""
    try:
        return (yield)
    finally:
        if item.stash.get(_HOOKED, False) and _TEST in item.stash:
            _turn_off(item)


@pytest.fixture
def _llm_cache_activation(request: pytest.FixtureRequest) -> Iterator[TestCache | None]:
    """Turns the cache on around a cached test whose options need a fixture of its own: an
    ``llm_cache_config`` a conftest, module or class overrides. Pulled in by the ``llm_cache``
    fixture too, where the set-up hook may already have turned the cache on."""
    node = request.node
    if node.stash.get(_HOOKED, False):
        yield node.stash.get(_TEST, None)
        return
    settings = node.config.stash[_SETTINGS]
    if not isinstance(node, pytest.Item) or not (
        _wants_cache(node, settings) or "llm_cache" in getattr(node, "fixturenames", ())
    ):
        yield None
        return
    test = _turn_on(node, _options(node, settings))
    if settings.mode is Mode.OFF:
        yield test
        return
    try:
        yield test
    finally:
        _turn_off(node)


def _turn_on(node: pytest.Item, options: TestOptions | str) -> TestCache:
    """Start caching ``node``'s calls (in ``off`` mode, only its counts for ``llm_cache``).

    ``options`` is the problem found with them instead, if any: the test fails.
    """
    if isinstance(options, str):
        pytest.fail(f"pytest-llmcache: {node.nodeid}: {options}", pytrace=False)
    config = node.config
    settings = config.stash[_SETTINGS]
    file = cassette_file(
        test_file=node.path,
        nodeid=node.nodeid,
        shared_name=options.cassette,
        cassette_dir=settings.cassette_dir,
        rootpath=config.rootpath,
    )
    engine = _engine(config)
    if settings.mode is Mode.OFF:
        from ._engine import TestCache

        return TestCache(engine, node.nodeid, options, file)
    from . import _adapters

    _adapters.install()
    test = engine.begin(
        _command_line_id(node, config),
        options,
        file,
        test_id=node.nodeid,
        normalize=_normalizer(node.session, node.path),
    )
    node.stash[_TEST] = test
    return test


def _turn_off(node: pytest.Item) -> None:
    test = node.stash[_TEST]
    del node.stash[_TEST]
    _engine(node.config).end(test)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: Any, request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """A session, package, module or class fixture set up for a cached test: its calls go to
    a cassette of its own (see ``_fixtures``)."""
    config = request.config
    settings = config.stash[_SETTINGS]
    item = getattr(request, "_pyfuncitem", None)
    if (
        fixturedef.scope == "function"
        or settings.mode is Mode.OFF
        or not isinstance(item, pytest.Item)
        or not (item.stash.get(_HOOKED, False) or _ACTIVATION in getattr(item, "fixturenames", ()))
    ):
        return (yield)
    from ._fixtures import fixture_cache

    engine = _engine(config)
    # The hook as it applies where the fixture is defined: its conftest's or module's folder.
    normalize = _normalizer(request.session, config.rootpath / fixturedef.baseid)
    with fixture_cache(
        engine,
        settings,
        fixturedef,
        request,
        item,
        lambda i: _command_line_id(i, config),
        normalize,
    ):
        return (yield)


@pytest.fixture
def llm_cache(_llm_cache_activation: TestCache | None) -> TestCache:
    """This test's cache: its counts (``llm_cache.counts``) and ``llm_cache.cassette_path``."""
    assert _llm_cache_activation is not None
    return _llm_cache_activation


@pytest.fixture
def llm_cache_config() -> dict[str, object]:
    """Default ``llm_cache`` keywords for the tests in scope; override it in a conftest.py."""
    return {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    test = item.stash.get(_TEST, None)
    if test is not None and test.messages:
        # The test caught our failure (a broad except); it must not pass on a missed call.
        pytest.fail(test.messages[0], pytrace=False)
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash[_SETTINGS]
    folders = config.stash.setdefault(_PRUNE_FOLDERS, set())
    outcomes = config.stash[_OUTCOMES]
    for item in items:
        if settings.prune:
            folders.add(module_folder(item, settings))
        names = getattr(item, "fixturenames", None)
        if (
            settings.mode is not Mode.OFF
            and isinstance(names, list)
            and (_wants_cache(item, settings) or _ACTIVATION in names)
        ):
            outcomes.collected[item.nodeid] = item
            if _default_config(item):
                item.stash[_HOOKED] = True  # the set-up and teardown hooks turn it on
                continue
            # The fixture goes before the test's own function fixtures, so the cache is on
            # when they make calls, and after broader ones (session, module), which serve
            # more than this test. (Parametrized tests share this list.)
            if _ACTIVATION in names:
                names.remove(_ACTIVATION)
            names.insert(_first_function_fixture(item, names), _ACTIVATION)


def _first_function_fixture(item: pytest.Item, names: list[str]) -> int:
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for position, name in enumerate(names):
        found = definitions.get(name)
        if found and found[-1].scope == "function":
            return position
    return len(names)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[_PARTIAL] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    engine = config.stash.get(_ENGINE, None)
    if engine is None:
        return
    stats = engine.stats
    stats.folders += sorted(config.stash.get(_PRUNE_FOLDERS, set()) - set(stats.folders))
    stats.partial = stats.partial or config.stash.get(_PARTIAL, False)
    outcomes = config.stash.get(_OUTCOMES, None)
    if outcomes is not None:
        stats.add_outcomes(
            collected=list(outcomes.collected),
            passed=outcomes.passed,
            protected_paths=sorted(outcomes.protected_paths),
            protected_folders=sorted(outcomes.protected_folders),
        )
    worker = getattr(config, "workeroutput", None)
    if worker is not None:
        worker["llm_cache"] = stats.to_json()  # the controller reports for everyone
        return
    from . import _report
    from ._audit import finish_run

    complete = (
        exitstatus == pytest.ExitCode.OK
        and not session.shouldfail
        and not session.shouldstop
        and not config.getoption("keyword")
        and not config.getoption("markexpr")
        and not any("::" in arg for arg in config.args)
    )
    audit = finish_run(engine.settings, stats, complete=complete, read=engine.on_disk)
    config.stash[_AUDIT] = audit
    if audit is not None and audit.unused and engine.settings.strict and not audit.pruned:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if engine.settings.fail_on_drift and _report.changed(stats):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if engine.settings.report_path is not None:
        _report.write_json(engine, audit, engine.settings.report_path)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    config = terminalreporter.config
    engine = config.stash.get(_ENGINE, None)
    if engine is not None and not hasattr(config, "workerinput"):
        from . import _report

        _report.write_summary(engine, terminalreporter, config.stash.get(_AUDIT, None))


def _from_invocation_dir(config: pytest.Config, path: str | None) -> str | None:
    """A path typed on the command line is relative to where pytest was started."""
    return None if path is None else str(config.invocation_params.dir / path)


def _options(node: pytest.Item, settings: Settings) -> TestOptions | str:
    """The test's options (or what is wrong with them): worked out once for the tests that
    share the same markers (the parameters of one test, a module's ``pytestmark``) when no
    ``llm_cache_config`` fixture overrides the plugin's own."""
    marks = list(node.iter_markers("llm_cache"))
    try:
        if not _default_config(node):
            config = node._request.getfixturevalue("llm_cache_config")  # type: ignore[attr-defined]
            return resolve_test_options(settings, config, _keywords(marks))
        # Marks live as long as the session: their ids name them (the list keeps them alive).
        known = node.config.stash.setdefault(_OPTIONS, {})
        key = tuple(map(id, marks))
        found = known.get(key)
        if found is None:
            found = known[key] = (marks, resolve_test_options(settings, {}, _keywords(marks)))
        return found[1]
    except OptionError as exc:
        return str(exc)


def _keywords(marks: list[pytest.Mark]) -> list[tuple[Any, Any]]:
    """Each ``llm_cache`` marker's arguments, the broadest first."""
    return [(m.args, m.kwargs) for m in reversed(marks)]


def _default_config(node: pytest.Item) -> bool:
    """Whether no conftest, module or class overrides the ``llm_cache_config`` fixture for
    ``node``: asked of pytest once per module or class (its lookup costs more than the rest
    of a test's set-up), whose tests all see the same definitions."""
    known = node.config.stash.setdefault(_OWN_CONFIG, {})
    parent = node.parent
    found = known.get(id(parent)) if parent is not None else None
    if found is not None:
        return found[1]
    definitions = node.session._fixturemanager.getfixturedefs("llm_cache_config", node)
    default = definitions is not None and len(definitions) == 1 and definitions[0].baseid == ""
    if parent is not None:
        known[id(parent)] = (parent, default)  # the node kept, so its id stays its own
    return default


def _command_line_id(node: pytest.Item, config: pytest.Config) -> str:
    """The node id as it must be typed where pytest was started (the rootdir may differ)."""
    _, sep, rest = node.nodeid.partition("::")
    return f"{_typed_path(node.path, config.invocation_params.dir)}{sep}{rest}"


@functools.lru_cache(maxsize=1024)
def _typed_path(path: Path, start: Path) -> str:
    try:
        return path.relative_to(start).as_posix()
    except ValueError:
        return str(path)


def _normalizer(session: pytest.Session, path: Path) -> Normalizer:
    """The normalize hook as it applies at ``path``: plugins' and the ``conftest.py`` files'
    of its folder and the folders above it, as pytest scopes any hook (another folder's
    conftest is not for this test). Made once for each path."""
    known = session.config.stash.setdefault(_NORMALIZERS, {})
    found = known.get(path)
    if found is not None:
        return found
    hook = session.gethookproxy(path).pytest_llm_cache_normalize_request

    def normalize(request: Request) -> Request:
        # conftest.py files register as collection reaches them: look each time.
        if not hook.get_hookimpls():
            return request
        result = hook(request=request)
        return request if result is None else result

    known[path] = normalize
    return normalize
