"""Settings and their precedence, resolved in one place (SPEC §1)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_llmcache._settings import (
    MARKER_KEYWORDS,
    Mode,
    OptionError,
    Settings,
    TestOptions,
    parse_prices,
    parse_ttl,
    resolve_settings,
    resolve_test_options,
)

ROOT = Path("/project").resolve()


def settings(
    cli: str | None = None,
    env: Mapping[str, str] | None = None,
    ini: Mapping[str, object] | None = None,
    strict: bool = False,
    cli_dir: str | None = None,
) -> Settings:
    return resolve_settings(
        cli_mode=cli,
        cli_strict=strict,
        cli_dir=cli_dir,
        env=env or {},
        ini=ini or {},
        rootpath=ROOT,
    )


@pytest.mark.parametrize(
    ("ini", "env", "cli", "expected"),
    [
        pytest.param(None, None, None, Mode.REPLAY, id="default"),
        pytest.param({"llm_cache_mode": "auto"}, None, None, Mode.AUTO, id="ini"),
        pytest.param({"llm_cache_mode": ""}, None, None, Mode.REPLAY, id="ini-empty"),
        pytest.param({"llm_cache_mode": None}, None, None, Mode.REPLAY, id="ini-unset"),
        pytest.param(None, {"LLM_CACHE_MODE": "record"}, None, Mode.RECORD, id="env"),
        pytest.param(
            {"llm_cache_mode": "auto"}, {"LLM_CACHE_MODE": "off"}, None, Mode.OFF, id="env>ini"
        ),
        pytest.param(
            {"llm_cache_mode": "auto"}, {"LLM_CACHE_MODE": ""}, None, Mode.AUTO, id="env-empty"
        ),
        pytest.param(
            {"llm_cache_mode": "auto"}, {"LLM_CACHE_MODE": "  "}, None, Mode.AUTO, id="env-blank"
        ),
        pytest.param(None, {"LLM_CACHE_MODE": " Record\n"}, None, Mode.RECORD, id="env-case-space"),
        pytest.param(None, {"OTHER": "record"}, None, Mode.REPLAY, id="other-env"),
        pytest.param(None, None, "record", Mode.RECORD, id="cli"),
        pytest.param(None, {"LLM_CACHE_MODE": "record"}, "replay", Mode.REPLAY, id="cli>env"),
        pytest.param({"llm_cache_mode": "record"}, None, "off", Mode.OFF, id="cli>ini"),
        pytest.param(
            {"llm_cache_mode": "record"}, {"LLM_CACHE_MODE": "auto"}, "off", Mode.OFF, id="cli>all"
        ),
        pytest.param(None, None, "AUTO", Mode.AUTO, id="cli-case"),
    ],
)
def test_mode_precedence(
    ini: Mapping[str, object] | None,
    env: Mapping[str, str] | None,
    cli: str | None,
    expected: Mode,
) -> None:
    assert settings(cli, env, ini).mode is expected


@pytest.mark.parametrize(
    ("ini", "env", "cli", "source"),
    [
        pytest.param({"llm_cache_mode": "replay-only"}, None, None, "ini option llm_cache_mode"),
        pytest.param(None, {"LLM_CACHE_MODE": "rec"}, None, "environment variable LLM_CACHE_MODE"),
        pytest.param(None, None, "playback", "--llm-cache"),
        # A bad value is reported even when a higher source would have overridden it.
        pytest.param({"llm_cache_mode": "bogus"}, None, "record", "ini option llm_cache_mode"),
    ],
)
def test_unknown_mode(
    ini: Mapping[str, object] | None, env: Mapping[str, str] | None, cli: str | None, source: str
) -> None:
    with pytest.raises(OptionError) as info:
        settings(cli, env, ini)
    message = str(info.value)
    assert message.startswith(source)
    assert "replay, record, auto, off" in message


def test_defaults() -> None:
    assert settings() == Settings()
    assert Settings() == Settings(
        mode=Mode.REPLAY,
        strict=False,
        cassette_dir=None,
        all_tests=False,
        ttl=None,
        ignore_fields=(),
        match_headers=(),
    )


@pytest.mark.parametrize(
    ("ini", "cli_dir", "expected"),
    [
        pytest.param({}, None, None, id="unset"),
        pytest.param(
            {"llm_cache_dir": "tests/cassettes"}, None, ROOT / "tests/cassettes", id="ini"
        ),
        pytest.param({"llm_cache_dir": "/abs/c"}, None, Path("/abs/c"), id="ini-absolute"),
        pytest.param({"llm_cache_dir": "ini"}, "cli", ROOT / "cli", id="cli>ini"),
        pytest.param({"llm_cache_dir": "  "}, None, None, id="blank"),
    ],
)
def test_cassette_dir(
    ini: Mapping[str, object], cli_dir: str | None, expected: Path | None
) -> None:
    assert settings(ini=ini, cli_dir=cli_dir).cassette_dir == expected


@pytest.mark.parametrize(
    ("ini", "cli_strict", "expected"),
    [({}, False, False), ({"llm_cache_strict": True}, False, True), ({}, True, True)],
)
def test_strict(ini: Mapping[str, object], cli_strict: bool, expected: bool) -> None:
    assert settings(ini=ini, strict=cli_strict).strict is expected


def test_ini_values() -> None:
    resolved = settings(
        ini={
            "llm_cache_all_tests": True,
            "llm_cache_ttl": "15m",
            "llm_cache_ignore_fields": ["user", " metadata.run ", ""],
            "llm_cache_match_headers": ["X-Region", "OpenAI-Organization"],
        }
    )
    assert resolved.all_tests is True
    assert resolved.ttl == 900
    assert resolved.ignore_fields == ("user", "metadata.run")
    assert resolved.match_headers == ("x-region", "openai-organization")


def test_bad_ini_ttl_names_the_option() -> None:
    with pytest.raises(OptionError, match=r"^ini option llm_cache_ttl: ttl 'soon'"):
        settings(ini={"llm_cache_ttl": "soon"})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("7d", 7 * 86400),
        ("1.5h", 5400),
        (" 2 h ", 7200),
        ("3600", 3600),
        (3600, 3600),
        (1.5, 1.5),
        (None, None),
        ("", None),
    ],
)
def test_parse_ttl(value: object, seconds: float | None) -> None:
    result = parse_ttl(value, "here")
    assert result == seconds
    if result is not None:
        assert isinstance(result, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "positive"),
        (-1, "positive"),
        ("0s", "positive"),
        (float("nan"), "positive"),
        ("soon", "not a duration"),
        ("-1h", "not a duration"),
        ("1w", "not a duration"),
        ("1h30m", "not a duration"),
        (True, "not True"),
        (False, "not False"),
        ([], "not list"),
        ({"h": 1}, "not dict"),
    ],
)
def test_parse_ttl_errors(value: object, message: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_ttl(value, "@pytest.mark.llm_cache(ttl=...)")
    assert str(info.value).startswith("@pytest.mark.llm_cache(ttl=...): ")
    assert message in str(info.value)


def test_infinite_ttl_is_allowed() -> None:
    assert parse_ttl(math.inf, "here") == math.inf


Marker = tuple[Sequence[object], Mapping[str, object]]
BASE = Settings(ttl=60.0, ignore_fields=("user",), match_headers=("x-ini",))


def options(config: Mapping[str, object], *markers: Mapping[str, object]) -> TestOptions:
    return resolve_test_options(BASE, config, [((), m) for m in markers])


@pytest.mark.parametrize(
    ("config", "markers", "expected"),
    [
        pytest.param(
            {}, [], TestOptions(ttl=60, ignore_fields=("user",), match_headers=("x-ini",)), id="ini"
        ),
        pytest.param(
            {"ttl": "1h"},
            [],
            TestOptions(ttl=3600, ignore_fields=("user",), match_headers=("x-ini",)),
            id="config>ini",
        ),
        pytest.param(
            {"ttl": "1h"},
            [{"ttl": 5}],
            TestOptions(ttl=5, ignore_fields=("user",), match_headers=("x-ini",)),
            id="marker>config",
        ),
        pytest.param(
            {"ttl": "1h", "cassette": "from_config"},
            [{"ttl": "1d"}, {"ttl": "2m"}, {"ttl": 7}],
            TestOptions(
                ttl=7, cassette="from_config", ignore_fields=("user",), match_headers=("x-ini",)
            ),
            id="narrowest-marker-wins",
        ),
        pytest.param(
            {"ignore_fields": ["a"]},
            [{"cassette": "mod"}, {"match_headers": ["X-Test"]}, {"match_api_key": True}],
            TestOptions(
                ttl=60,
                cassette="mod",
                ignore_fields=("a",),
                match_headers=("x-test",),
                match_api_key=True,
            ),
            id="each-level-adds-its-own",
        ),
        pytest.param(
            {"match_api_key": True},
            [{"match_api_key": False}],
            TestOptions(ttl=60, ignore_fields=("user",), match_headers=("x-ini",)),
            id="marker-turns-off",
        ),
        pytest.param(
            {},
            [{"ttl": None}],
            TestOptions(ttl=None, ignore_fields=("user",), match_headers=("x-ini",)),
            id="marker-removes-ttl",
        ),
        pytest.param(
            {},
            [{"ignore_fields": "metadata.run", "match_headers": ()}],
            TestOptions(ttl=60, ignore_fields=("metadata.run",), match_headers=()),
            id="string-and-empty",
        ),
    ],
)
def test_test_options_precedence(
    config: Mapping[str, object], markers: list[Mapping[str, object]], expected: TestOptions
) -> None:
    assert options(config, *markers) == expected


def test_generator_is_read_once() -> None:
    # Built here, not in the table: a generator in a parameter is empty after one run.
    fields = (f for f in ["a", "b"])
    assert options({}, {"ignore_fields": fields}).ignore_fields == ("a", "b")


@pytest.mark.parametrize(
    ("config", "markers", "named", "source"),
    [
        pytest.param({}, [{"tll": 5}], "'tll'", "@pytest.mark.llm_cache", id="marker"),
        pytest.param({"casette": "x"}, [], "'casette'", "fixture llm_cache_config", id="config"),
        pytest.param(
            {}, [{"ttl": 1}, {"record": True, "zz": 1}], "'record', 'zz'", "@pytest", id="two"
        ),
    ],
)
def test_unknown_keyword(
    config: Mapping[str, object], markers: list[Mapping[str, object]], named: str, source: str
) -> None:
    with pytest.raises(OptionError) as info:
        options(config, *markers)
    message = str(info.value)
    assert message.startswith(source)
    assert f"unknown keyword {named}" in message
    assert f"allowed: {', '.join(MARKER_KEYWORDS)}" in message


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param({"ttl": "soon"}, "ttl", id="ttl"),
        pytest.param({"ttl": 0}, "ttl", id="ttl-zero"),
        pytest.param({"match_api_key": "yes"}, "match_api_key", id="match_api_key"),
        pytest.param({"ignore_fields": [1]}, "ignore_fields", id="ignore-int"),
        pytest.param({"ignore_fields": ["a", ""]}, "ignore_fields", id="ignore-empty"),
        pytest.param({"ignore_fields": 5}, "ignore_fields", id="ignore-scalar"),
        pytest.param({"match_headers": [None]}, "match_headers", id="headers-none"),
        pytest.param({"match_headers": b"x-a"}, "match_headers", id="headers-bytes"),
        pytest.param({"cassette": 3}, "cassette", id="cassette-int"),
    ],
)
def test_bad_values(values: Mapping[str, object], named: str) -> None:
    with pytest.raises(OptionError, match=rf"^@pytest\.mark\.llm_cache\({named}=\.\.\.\)"):
        options({}, values)


def test_positional_marker_arguments() -> None:
    expected = r"keywords only \(allow_hosts, .*cassette, .*positional \(3600,\)"
    with pytest.raises(OptionError, match=expected):
        resolve_test_options(BASE, {}, [((3600,), {})])


@pytest.mark.parametrize("config", [None, ["ttl"], "ttl=1"])
def test_config_must_be_a_dict(config: object) -> None:
    with pytest.raises(OptionError, match=r"^fixture llm_cache_config must return a dict"):
        resolve_test_options(BASE, config, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("shared_chat", "shared_chat"),
        ("shared_chat.yaml", "shared_chat"),
        ("group/shared-1", "group/shared-1"),
        ("test_x[gpt-4o]", "test_x[gpt-4o]"),
        ("v1.2", "v1.2"),
    ],
)
def test_cassette_names(name: str, expected: str) -> None:
    assert options({}, {"cassette": name}).cassette == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../escape",
        "a/../../b",
        "a/./b",
        "/etc/passwd",
        "a//b",
        "a/",
        "a\\b",
        "C:\\x",
        "a\nb",
        "a\n",
        "shared\n.yaml",
        "name?",
        "*",
        ".yaml",
        "a/.yaml",
        "...yaml",
    ],
)
def test_bad_cassette_names(name: str) -> None:
    with pytest.raises(OptionError) as info:
        options({}, {"cassette": name})
    assert "cassette=..." in str(info.value)
    assert repr(name) in str(info.value)


def test_command_line_only_values() -> None:
    plain = settings()
    assert plain.prune is False
    assert plain.report_path is None
    resolved = resolve_settings(
        cli_mode=None,
        cli_strict=False,
        cli_dir=None,
        env={},
        ini={},
        rootpath=ROOT,
        cli_prune=True,
        cli_report="out/report.json",
    )
    assert resolved.prune is True
    assert resolved.report_path == Path("out/report.json")


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        pytest.param({}, Settings(), id="unset"),
        pytest.param(
            {
                "llm_cache_allow_hosts": "Search.Example.com  localhost\n",
                "llm_cache_block_loopback": True,
                "llm_cache_allow_secrets": ["sk-proj-EXAMPLE*", " Key-Ok "],
                "llm_cache_ignore_fields": "user  metadata.run\n",
            },
            Settings(
                allow_hosts=("search.example.com", "localhost"),
                block_loopback=True,
                allow_secrets=("sk-proj-EXAMPLE*", "Key-Ok"),
                ignore_fields=("user", "metadata.run"),
            ),
            id="lines-and-lists",
        ),
        pytest.param(
            {"llm_cache_allow_hosts": 5, "llm_cache_allow_secrets": None},
            Settings(),
            id="not-text",
        ),
        pytest.param(
            {"llm_cache_prices": "gpt-4o 2.5 10\n"},
            Settings(prices=(("gpt-4o", 2.5, 10.0),)),
            id="prices",
        ),
    ],
)
def test_ini_allowances_and_prices(ini: Mapping[str, object], expected: Settings) -> None:
    assert settings(ini=ini) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, (), id="unset"),
        pytest.param(12, (), id="not-lines"),
        pytest.param("", (), id="empty"),
        pytest.param(
            "\n  # model  in  out\n#\ngpt-4o 2.5 10\n\n# claude 3 15\nclaude-x 3 15.5\n",
            (("gpt-4o", 2.5, 10.0), ("claude-x", 3.0, 15.5)),
            id="text-with-comments",
        ),
        pytest.param(
            ["gpt-4o 2.5 10", "", "# x", "mini .15 .6"],
            (("gpt-4o", 2.5, 10.0), ("mini", 0.15, 0.6)),
            id="list",
        ),
        pytest.param(("a 1 2",), (("a", 1.0, 2.0),), id="tuple"),
    ],
)
def test_parse_prices(value: object, expected: tuple[tuple[str, float, float], ...]) -> None:
    assert parse_prices(value) == expected


@pytest.mark.parametrize(
    "line", ["gpt-4o 2.5", "gpt-4o 2.5 10 extra", "gpt-4o cheap 10", "gpt-4o 2.5 dear"]
)
def test_parse_prices_errors(line: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_prices(f"ok 1 2\n  {line}  \n")
    assert str(info.value) == (
        f"ini option llm_cache_prices: {line!r} is not "
        "'<model> <$ per 1M input tokens> <$ per 1M output tokens>'"
    )


def test_parse_ttl_error_message() -> None:
    with pytest.raises(OptionError) as info:
        parse_ttl("soon", "here")
    assert str(info.value) == (
        "here: ttl 'soon' is not a duration; use seconds or "
        "a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d)"
    )


@pytest.mark.parametrize(
    ("config", "kind"), [(None, "NoneType"), (["ttl"], "list"), ("ttl=1", "str")]
)
def test_config_type_is_named(config: object, kind: str) -> None:
    with pytest.raises(OptionError) as info:
        resolve_test_options(BASE, config, [])  # type: ignore[arg-type]
    assert str(info.value).endswith(f", not {kind}")


ALLOWING = Settings(allow_hosts=("ini.example",), allow_secrets=("sk-INI*",))


@pytest.mark.parametrize(
    ("config", "markers", "hosts", "patterns"),
    [
        pytest.param({}, [], ("ini.example",), ("sk-INI*",), id="ini"),
        pytest.param(
            {"allow_hosts": ["Fixture.Example"], "allow_secrets": "sk-Fix*"},
            [],
            ("ini.example", "fixture.example"),
            ("sk-INI*", "sk-Fix*"),
            id="fixture-adds",
        ),
        pytest.param(
            {"allow_hosts": "a.example"},
            [
                {"allow_hosts": ("B.example", "ini.example")},
                {"allow_secrets": ["sk-Mark*", "sk-INI*"]},
            ],
            ("ini.example", "a.example", "b.example"),
            ("sk-INI*", "sk-Mark*"),
            id="markers-add-once",
        ),
        pytest.param(
            {},
            [{"allow_hosts": [], "allow_secrets": ()}],
            ("ini.example",),
            ("sk-INI*",),
            id="empty",
        ),
    ],
)
def test_allowances_add_up(
    config: Mapping[str, object],
    markers: list[Mapping[str, object]],
    hosts: tuple[str, ...],
    patterns: tuple[str, ...],
) -> None:
    resolved = resolve_test_options(ALLOWING, config, [((), m) for m in markers])
    assert resolved.allow_hosts == hosts
    assert resolved.allow_secrets == patterns
    assert resolved.ttl is None
    assert resolved.cassette is None


@pytest.mark.parametrize("keyword", ["allow_hosts", "allow_secrets"])
@pytest.mark.parametrize(
    ("value", "shown"), [([""], "('',)"), ([3], "(3,)"), (7, "7"), (b"x", "b'x'")]
)
def test_bad_allowances(keyword: str, value: object, shown: str) -> None:
    with pytest.raises(OptionError) as info:
        options({}, {keyword: value})
    assert str(info.value) == (
        f"@pytest.mark.llm_cache({keyword}=...) must be a list of non-empty strings, got {shown}"
    )


@pytest.mark.parametrize("value", [Settings(), TestOptions()], ids=lambda v: type(v).__name__)
def test_settings_and_options_cannot_be_changed_in_place(value: Settings | TestOptions) -> None:
    with pytest.raises(AttributeError):
        value.ttl = 5  # type: ignore[misc]
    assert value._replace(ttl=5.0).ttl == 5.0
    assert value.ttl is None
    assert hash(value) == hash(type(value)())
    assert repr(value).startswith(f"{type(value).__name__}(")
    assert "ttl=None" in repr(value)


def test_test_options_are_not_collected_as_a_test_class() -> None:
    # Imported into test modules (this one too): pytest must not try to collect it.
    assert TestOptions.__test__ is False  # type: ignore[attr-defined]
