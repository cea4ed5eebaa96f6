"""pytest hooks and fixtures; each hands off at once to the module that owns the idea."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Literal

import pytest

from . import _adapters, _hooks, _report, _xdist
from ._audit import Audit, finish_run
from ._engine import Engine, TestCache
from ._exchange import Request
from ._lock import forget_run
from ._paths import cassette_path
from ._settings import Mode, OptionError, resolve_settings, resolve_test_options

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

_ENGINE = pytest.StashKey[Engine]()
_TEST = pytest.StashKey[TestCache]()
_AUDIT = pytest.StashKey[Audit | None]()

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
        "match_api_key=False): record and replay the HTTP calls of this test "
        "(pytest-llmcache).",
    )
    try:
        settings = resolve_settings(
            cli_mode=config.getoption("llm_cache_mode"),
            cli_strict=config.getoption("llm_cache_strict"),
            cli_dir=_from_invocation_dir(config, config.getoption("llm_cache_dir")),
            cli_prune=config.getoption("llm_cache_prune"),
            cli_report=_from_invocation_dir(config, config.getoption("llm_cache_report")),
            env=os.environ,
            ini={name: config.getini(name) for name, *_ in _INI},
            rootpath=config.rootpath,
        )
    except OptionError as exc:
        raise pytest.UsageError(f"pytest-llmcache: {exc}") from None
    cache = getattr(config, "cache", None)
    worker = getattr(config, "workerinput", None)
    engine = config.stash[_ENGINE] = Engine(
        settings,
        parse_cache=cache.mkdir("llm-cache") if cache is not None else None,
        normalize=_normalizer(config),
        display_root=config.invocation_params.dir,
        run_id=worker["testrunuid"] if worker else None,
    )
    if worker is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_xdist.Controller(engine), "llm_cache_xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    _adapters.uninstall()


def pytest_report_header(config: pytest.Config) -> str | None:
    engine = config.stash.get(_ENGINE, None)
    return None if engine is None else f"llm-cache: mode={engine.settings.mode.value}"


@pytest.fixture(autouse=True)
def _llm_cache_activation(request: pytest.FixtureRequest) -> Iterator[TestCache | None]:
    """Turns the cache on around a marked test (setup, call and teardown)."""
    engine = request.config.stash.get(_ENGINE, None)
    node = request.node
    assert isinstance(node, pytest.Item)
    if engine is None or not (
        engine.settings.all_tests
        or node.get_closest_marker("llm_cache") is not None
        or "llm_cache" in request.fixturenames
    ):
        yield None
        return
    markers = [(m.args, m.kwargs) for m in reversed(list(node.iter_markers("llm_cache")))]
    try:
        options = resolve_test_options(
            engine.settings, request.getfixturevalue("llm_cache_config"), markers
        )
    except OptionError as exc:
        pytest.fail(f"pytest-llmcache: {node.nodeid}: {exc}", pytrace=False)
    path = cassette_path(
        test_file=node.path,
        nodeid=node.nodeid,
        shared_name=options.cassette,
        cassette_dir=engine.settings.cassette_dir,
        rootpath=request.config.rootpath,
    )
    if engine.settings.mode is Mode.OFF:
        yield TestCache(engine, node.nodeid, options, path)
        return
    _adapters.install()
    test = engine.begin(_command_line_id(node, request.config), options, path)
    node.stash[_TEST] = test
    try:
        yield test
    finally:
        engine.end(test)


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
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    test = item.stash.get(_TEST, None)
    if test is not None and report.when == "call":
        if test.messages and report.passed:
            # The test caught our failure (a broad except); it must not pass on a missed call.
            report.outcome = "failed"
            report.longrepr = test.messages[0]
        test.passed = report.passed
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    engine = config.stash.get(_ENGINE, None)
    if engine is None or not engine.settings.prune:
        return
    folders = {
        str(
            cassette_path(
                test_file=item.path,
                nodeid=item.nodeid,
                shared_name=None,
                cassette_dir=engine.settings.cassette_dir,
                rootpath=config.rootpath,
            ).parent
        )
        for item in items
    }
    engine.stats.folders += sorted(folders - set(engine.stats.folders))


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        engine = items[0].config.stash.get(_ENGINE, None)
        if engine is not None:
            engine.stats.partial = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    engine = config.stash.get(_ENGINE, None)
    if engine is None:
        return
    worker = getattr(config, "workeroutput", None)
    if worker is not None:
        worker["llm_cache"] = engine.stats.to_json()  # the controller reports for everyone
        return
    forget_run(engine.run_id)
    complete = (
        exitstatus == pytest.ExitCode.OK
        and not session.shouldfail
        and not session.shouldstop
        and not config.getoption("keyword")
        and not config.getoption("markexpr")
        and not any("::" in arg for arg in config.args)
    )
    audit = finish_run(engine.settings, engine.stats, complete=complete, read=engine.on_disk)
    config.stash[_AUDIT] = audit
    if audit is not None and audit.unused and engine.settings.strict and not audit.pruned:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if engine.settings.report_path is not None:
        _report.write_json(engine, audit, engine.settings.report_path)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    config = terminalreporter.config
    engine = config.stash.get(_ENGINE, None)
    if engine is not None and not hasattr(config, "workerinput"):
        _report.write_summary(engine, terminalreporter, config.stash.get(_AUDIT, None))


def _from_invocation_dir(config: pytest.Config, path: str | None) -> str | None:
    """A path typed on the command line is relative to where pytest was started."""
    return None if path is None else str(config.invocation_params.dir / path)


def _command_line_id(node: pytest.Item, config: pytest.Config) -> str:
    """The node id as it must be typed where pytest was started (the rootdir may differ)."""
    _, sep, rest = node.nodeid.partition("::")
    try:
        path = node.path.relative_to(config.invocation_params.dir).as_posix()
    except ValueError:
        path = str(node.path)
    return f"{path}{sep}{rest}"


def _normalizer(config: pytest.Config) -> Any:
    hook = config.pluginmanager.hook.pytest_llm_cache_normalize_request

    def normalize(request: Request) -> Request:
        # conftest.py files register as collection reaches them: look each time.
        if not hook.get_hookimpls():
            return request
        result = hook(request=request)
        return request if result is None else result

    return normalize
