"""Settings and their precedence: every option the user can set, resolved in one place.

Suite-wide settings come from (lowest to highest) the defaults, the ini file, the
``LLM_CACHE_MODE`` environment variable and the command line. Per-test options come from the
ini defaults, then the ``llm_cache_config`` fixture, then ``llm_cache`` markers from the
broadest (module) to the narrowest (function).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "MARKER_KEYWORDS",
    "Mode",
    "OptionError",
    "Settings",
    "TestOptions",
    "parse_ttl",
    "resolve_settings",
    "resolve_test_options",
]

ENV_MODE = "LLM_CACHE_MODE"


class Mode(str, enum.Enum):
    """What the plugin does with an intercepted call."""

    REPLAY = "replay"
    """Serve stored responses; a miss fails the test and nothing touches the network."""
    RECORD = "record"
    """Call the provider for every call and rewrite the cassettes with this run's entries."""
    AUTO = "auto"
    """Serve fresh stored responses; record what is missing or expired."""
    OFF = "off"
    """The plugin is inactive: calls go to the network as if it were not installed."""

    @classmethod
    def parse(cls, value: str, source: str) -> Mode:
        """Return the mode named by ``value``; ``source`` says where it was written."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise OptionError(f"{source}: unknown mode {value!r}; choose one of: {valid}") from None


class OptionError(ValueError):
    """A setting has a value the plugin cannot use; the message names where it came from."""


_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.cache
def _ttl_re() -> re.Pattern[str]:
    # Compiled on first use: most runs set no ttl, or set it as a number.
    return re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_ttl(value: object, source: str) -> float | None:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``.

    ``None`` (or an empty string) means the entry never expires.
    """
    if value is None or value == "":
        return None
    seconds: float
    if isinstance(value, bool):
        raise OptionError(f"{source}: ttl must be seconds or a duration like '1h', not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _ttl_re().match(value)
        if match is None:
            raise OptionError(
                f"{source}: ttl {value!r} is not a duration; use seconds or "
                "a number with s, m, h or d (e.g. 90s, 15m, 1h, 7d)"
            )
        seconds = float(match.group(1)) * _TTL_UNITS[match.group(2) or "s"]
    else:
        raise OptionError(
            f"{source}: ttl must be seconds or a duration like '1h', not {type(value).__name__}"
        )
    if not seconds > 0:  # also refuses NaN, which would make an entry never expire
        raise OptionError(f"{source}: ttl must be positive, got {value!r}")
    return seconds


class Settings(NamedTuple):
    """Suite-wide settings, after precedence is applied.

    Immutable; ``settings._replace(mode=...)`` makes a changed copy. (A named tuple rather
    than a frozen dataclass: every run imports this module, and a dataclass costs ten times
    as much to define.)
    """

    mode: Mode = Mode.REPLAY
    strict: bool = False
    cassette_dir: Path | None = None
    all_tests: bool = False
    ttl: float | None = None
    ignore_fields: tuple[str, ...] = ()
    match_headers: tuple[str, ...] = ()
    prune: bool = False
    report_path: Path | None = None
    prices: tuple[tuple[str, float, float], ...] = ()
    """``(model, $ per 1M input tokens, $ per 1M output tokens)`` from ``llm_cache_prices``."""
    allow_hosts: tuple[str, ...] = ()
    """Hosts a replayed test may still connect to (``llm_cache_allow_hosts``)."""
    block_loopback: bool = False
    """Whether replay refuses loopback connections too (``llm_cache_block_loopback``)."""
    allow_secrets: tuple[str, ...] = ()
    """Values, or ``*`` patterns, that look like keys but are not (``llm_cache_allow_secrets``)."""
    fail_on_drift: bool = False
    """Whether a re-recorded answer or shape that changed fails the run
    (``--llm-cache-fail-on-drift``, ``llm_cache_fail_on_drift``)."""


def resolve_settings(
    *,
    cli_mode: str | None,
    cli_strict: bool,
    cli_dir: str | None,
    env: Mapping[str, str],
    ini: Mapping[str, object],
    rootpath: Path,
    cli_prune: bool = False,
    cli_report: str | None = None,
    cli_fail_on_drift: bool = False,
) -> Settings:
    """Apply defaults < ini < ``LLM_CACHE_MODE`` < command line, and validate every value.

    ``ini`` holds the raw ini values by option name (missing or empty means unset).
    Raises :class:`OptionError` naming the option that is wrong.
    """
    mode = Mode.REPLAY
    if ini_mode := _text(ini.get("llm_cache_mode")):
        mode = Mode.parse(ini_mode, "ini option llm_cache_mode")
    if env_mode := env.get(ENV_MODE, "").strip():
        mode = Mode.parse(env_mode, f"environment variable {ENV_MODE}")
    if cli_mode:
        mode = Mode.parse(cli_mode, "--llm-cache")

    raw_dir = cli_dir or _text(ini.get("llm_cache_dir"))
    cassette_dir = None
    if raw_dir:
        cassette_dir = Path(raw_dir)
        if not cassette_dir.is_absolute():
            cassette_dir = rootpath / cassette_dir

    return Settings(
        mode=mode,
        strict=cli_strict or bool(ini.get("llm_cache_strict")),
        cassette_dir=cassette_dir,
        all_tests=bool(ini.get("llm_cache_all_tests")),
        ttl=parse_ttl(_text(ini.get("llm_cache_ttl")), "ini option llm_cache_ttl"),
        ignore_fields=_names(ini.get("llm_cache_ignore_fields")),
        match_headers=tuple(h.lower() for h in _names(ini.get("llm_cache_match_headers"))),
        prune=cli_prune,
        report_path=Path(cli_report) if cli_report else None,
        prices=parse_prices(ini.get("llm_cache_prices")),
        allow_hosts=tuple(h.lower() for h in _names(ini.get("llm_cache_allow_hosts"))),
        block_loopback=bool(ini.get("llm_cache_block_loopback")),
        allow_secrets=_names(ini.get("llm_cache_allow_secrets")),
        fail_on_drift=cli_fail_on_drift or bool(ini.get("llm_cache_fail_on_drift")),
    )


def parse_prices(value: object) -> tuple[tuple[str, float, float], ...]:
    """``llm_cache_prices`` lines: ``<model> <$ per 1M input tokens> <$ per 1M output tokens>``.

    No price is built in: prices change, and a stale table would report wrong savings.
    """
    lines = value.splitlines() if isinstance(value, str) else value
    if not isinstance(lines, list | tuple):
        return ()
    prices = []
    for line in lines:
        parts = str(line).split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            model, price_in, price_out = parts
            prices.append((model, float(price_in), float(price_out)))
        except ValueError:
            raise OptionError(
                f"ini option llm_cache_prices: {str(line).strip()!r} is not "
                "'<model> <$ per 1M input tokens> <$ per 1M output tokens>'"
            ) from None
    return tuple(prices)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return ()


MARKER_KEYWORDS = (
    "allow_hosts",
    "allow_secrets",
    "cassette",
    "ignore_fields",
    "match_api_key",
    "match_headers",
    "ttl",
)


class TestOptions(NamedTuple):
    """The options one test runs with (immutable: ``options._replace(...)`` makes a copy)."""

    ttl: float | None = None
    cassette: str | None = None
    ignore_fields: tuple[str, ...] = ()
    match_headers: tuple[str, ...] = ()
    match_api_key: bool = False
    allow_hosts: tuple[str, ...] = ()
    """Hosts this test may connect to in ``replay`` (the ini list plus the marker's)."""
    allow_secrets: tuple[str, ...] = ()
    """Key-shaped values (or ``*`` patterns) this test may record (the ini list plus its own)."""


# Not a test class, whatever pytest's name matching thinks (set here: a named tuple's body
# holds only fields).
TestOptions.__test__ = False  # type: ignore[attr-defined]


def resolve_test_options(
    settings: Settings,
    config: Mapping[str, object],
    markers: Sequence[tuple[Sequence[object], Mapping[str, object]]],
) -> TestOptions:
    """Merge ini defaults < ``llm_cache_config`` fixture < markers (broadest first).

    Each marker is given as ``(args, kwargs)``. Raises :class:`OptionError` naming the
    keyword and where it was written.
    """
    options = TestOptions(
        ttl=settings.ttl,
        ignore_fields=settings.ignore_fields,
        match_headers=settings.match_headers,
        allow_hosts=settings.allow_hosts,
        allow_secrets=settings.allow_secrets,
    )
    if not isinstance(config, Mapping):
        raise OptionError(
            "fixture llm_cache_config must return a dict of llm_cache keywords, "
            f"not {type(config).__name__}"
        )
    options = _apply(options, config, "fixture llm_cache_config")
    for args, kwargs in markers:
        if args:
            raise OptionError(
                "@pytest.mark.llm_cache takes keywords only "
                f"({', '.join(MARKER_KEYWORDS)}), got positional {args!r}"
            )
        options = _apply(options, kwargs, "@pytest.mark.llm_cache")
    return options


def _apply(options: TestOptions, values: Mapping[str, object], source: str) -> TestOptions:
    unknown = sorted(set(values) - set(MARKER_KEYWORDS))
    if unknown:
        raise OptionError(
            f"{source}: unknown keyword {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(MARKER_KEYWORDS)}"
        )
    changes: dict[str, Any] = {}  # each value checked above, by keyword
    if "ttl" in values:
        changes["ttl"] = parse_ttl(values["ttl"], f"{source}(ttl=...)")
    if "cassette" in values:
        changes["cassette"] = _cassette_name(values["cassette"], source)
    if "ignore_fields" in values:
        changes["ignore_fields"] = _str_list(values["ignore_fields"], source, "ignore_fields")
    if "match_headers" in values:
        headers = _str_list(values["match_headers"], source, "match_headers")
        changes["match_headers"] = tuple(h.lower() for h in headers)
    if "match_api_key" in values:
        flag = values["match_api_key"]
        if not isinstance(flag, bool):
            raise OptionError(f"{source}(match_api_key=...) must be True or False, got {flag!r}")
        changes["match_api_key"] = flag
    # Allowances add up from the ini to the narrowest marker: each level can only widen them.
    if "allow_hosts" in values:
        hosts = _str_list(values["allow_hosts"], source, "allow_hosts")
        changes["allow_hosts"] = _union(options.allow_hosts, (h.lower() for h in hosts))
    if "allow_secrets" in values:
        patterns = _str_list(values["allow_secrets"], source, "allow_secrets")
        changes["allow_secrets"] = _union(options.allow_secrets, patterns)
    return options._replace(**changes) if changes else options


def _union(first: Iterable[str], more: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *more)))


def _str_list(value: object, source: str, keyword: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Iterable) and not isinstance(value, bytes):
        value = tuple(value)  # read once: a generator would be empty after the check
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise OptionError(
            f"{source}({keyword}=...) must be a list of non-empty strings, got {value!r}"
        )
    return value


@functools.cache
def _cassette_name_re() -> re.Pattern[str]:
    # Compiled on first use: only a ``cassette=`` keyword needs it.
    return re.compile(r"^[\w.\-\[\]=+,@ ]+(?:/[\w.\-\[\]=+,@ ]+)*$")


def _cassette_name(value: object, source: str) -> str:
    # Checked without the suffix: ".yaml" alone or "a/.yaml" would name no file.
    name = value.removesuffix(".yaml") if isinstance(value, str) else ""
    if not _cassette_name_re().fullmatch(name) or any(
        part in (".", "..") for part in name.split("/")
    ):
        raise OptionError(
            f"{source}(cassette=...) must be a plain name such as 'shared_chat' "
            f"(letters, digits, . _ -), got {value!r}"
        )
    return name
