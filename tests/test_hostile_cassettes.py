"""A cassette from an untrusted pull request is read safely (SPEC §6, §9).

No tag runs code, no alias multiplies work, size and nesting are bounded, and odd YAML types
either load and work everywhere or are refused with the file named: never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest
from cassette_samples import chat_entry, llm_cache, write_cassette
from conftest import Suite

from pytest_llmcache import _cli
from pytest_llmcache._cassette import Cassette, CassetteError
from pytest_llmcache._check import check_file
from pytest_llmcache._yaml import MAX_SIZE

NO_ALIASES = "anchors and aliases (&name, *name) are not allowed in cassettes"


@pytest.fixture
def sample(tmp_path: Path) -> str:
    """The text of a real two-entry cassette (a JSON answer and an SSE stream)."""
    path = write_cassette(tmp_path / "sample.yaml", chat_entry("hi"), chat_entry("yo", stream=True))
    return path.read_text("utf-8")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    """The message :meth:`Cassette.load` refuses ``path`` with (it must refuse)."""
    with pytest.raises(CassetteError) as caught:
        Cassette.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    return message


def nested_aliases(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each level lists the one before ``width`` times."""
    lines = ['a0: &a0 ["' + "lol" * 10 + '"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# -- tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
        "!shell 'touch {marker}'",
    ],
)
def test_no_tag_runs_code(tmp_path: Path, sample: str, tagged: str) -> None:
    marker = tmp_path / "ran"
    value = tagged.format(marker=marker)
    path = write(tmp_path, "tagged", sample.replace("content-type: text/event-stream", value, 1))
    message = refusal(path)
    line = sample[: sample.index("content-type: text/event-stream")].count("\n") + 1
    assert f"{path}:{line}: not a valid cassette" in message
    assert "could not determine a constructor for the tag" in message
    assert not marker.exists()


# -- aliases --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # Billion laughs, at the top level and inside an entry's response body.
        nested_aliases() + "version: 1\nentries: []\n",
        "version: 1\nentries:\n- response:\n    body:\n      json:\n"
        + "".join(f"        {line}\n" for line in nested_aliases().splitlines()),
        # One big string, aliased many times: no container is shared, the strings are.
        "version: 1\nbig: &big '" + "x" * 100_000 + "'\nentries: [" + "*big, " * 50_000 + "]\n",
        # A list that holds itself.
        "version: 1\nentries: &loop [*loop]\n",
    ],
    ids=["billion-laughs-top", "billion-laughs-in-body", "aliased-string", "self-reference"],
)
def test_aliases_are_refused_quickly(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "bomb", text)
    started = time.perf_counter()
    message = refusal(path)
    assert time.perf_counter() - started < 0.5
    assert NO_ALIASES in message
    anchor_line = next(n for n, line in enumerate(text.splitlines(), 1) if "&" in line)
    assert message.startswith(f"{path}:{anchor_line}:")


def test_merge_keys_are_refused_before_they_grow(tmp_path: Path) -> None:
    # Each level merges the one before nine times: flattened, level 9 holds 9**9 pairs.
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for level in range(1, 10):
        merged = ", ".join([f"*m{level - 1}"] * 9)
        lines.append(f"m{level}: &m{level} {{<<: [{merged}], k{level}: 1}}")
    path = write(tmp_path, "merge", "\n".join(lines) + "\nversion: 1\n")
    started = time.perf_counter()
    message = refusal(path)
    assert time.perf_counter() - started < 0.5
    assert f"{path}:2: " in message
    assert "merge keys (<<) are not allowed in cassettes" in message


def test_a_merge_key_without_alias_is_refused_too(tmp_path: Path, sample: str) -> None:
    text = sample.replace("    status: 200\n", "    <<: {status: 200}\n", 1)
    assert "merge keys (<<) are not allowed" in refusal(write(tmp_path, "merge", text))


def test_what_looks_like_yaml_syntax_in_a_body_round_trips(tmp_path: Path) -> None:
    # The writer quotes these, so they are read back as the strings they were.
    reply = {"<<": "=", "&a": "*a", "when": "2024-01-01", "at": "2024-01-01 10:00:00", "n": ".nan"}
    path = write_cassette(tmp_path / "c.yaml", chat_entry(reply=reply))
    (entry,) = Cassette.load(path)
    assert json.loads(entry.to_response().chunks[0]) == reply


# -- size and depth -------------------------------------------------------------------------


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:  # sparse: the test writes no 64 MiB
        handle.truncate(MAX_SIZE + 1)
    message = refusal(path)
    assert f"{path}: cassette is {MAX_SIZE + 1:,} bytes" in message
    assert f"over the limit of {MAX_SIZE:,} bytes (64 MiB)" in message


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "limit.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_SIZE)
    # Read, and refused for what it holds (NUL bytes), not for its size.
    assert "over the limit" not in refusal(path)


def test_a_symlink_to_a_device_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.symlink_to("/dev/zero")
    assert "cannot read cassette: not a regular file" in refusal(path)


@pytest.mark.parametrize(
    "body",
    ["[" * 10_000 + "]" * 10_000, "{a: " * 10_000 + "1" + "}" * 10_000, "- " * 10_000 + "x"],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_very_deep_nesting_is_a_clean_error(tmp_path: Path, sample: str, body: str) -> None:
    text = sample.replace("'[DONE]'", body, 1) if body[0] != "-" else sample + body
    message = refusal(write(tmp_path, "deep", text))
    assert "not a valid cassette (YAML error:" in message


def test_nesting_past_the_limit_is_refused(tmp_path: Path, sample: str) -> None:
    # 120 levels: libyaml accepts it (its own limit is 1,000); no recorded body comes close.
    deep = "[" * 120 + "]" * 120
    message = refusal(write(tmp_path, "deep", sample.replace("'[DONE]'", deep, 1)))
    assert "nested deeper than 100 levels" in message


def test_a_deep_but_plausible_body_loads(tmp_path: Path) -> None:
    reply: object = "leaf"
    for _ in range(40):  # 80 levels of JSON, 87 with the entry around it
        reply = {"a": [reply]}
    path = write_cassette(tmp_path / "c.yaml", chat_entry(reply=reply))
    (entry,) = Cassette.load(path)
    assert json.loads(entry.to_response().chunks[0]) == reply


# -- odd but safe types, everywhere ---------------------------------------------------------

ODD_VALUES = {
    "binary": "!!binary aGk=",
    "set": "!!set {a, b}",
    "omap": "!!omap [a: 1]",
    "nan": ".nan",
    "inf": "-.inf",
    "date": "2024-01-01",
    "datetime": "2024-01-01 10:00:00",
    "impossible-date": "2024-02-30",
    "huge-int": "1" + "0" * 400,
    "too-many-digits": "1" * 5000,
    "bad-float": "!!float abc",
    "bad-bool": "!!bool maybe",
    "null": "null",
    "bool": "true",
    "list": "[1, 2]",
    "mapping": "{a: 1}",
}

# Where each odd value goes: (text in the sample, its replacement with {v} for the value).
PLACES = {
    "response-header-value": ("content-type: text/event-stream", "content-type: {v}"),
    "response-header-key": ("      content-type: text/event-stream", "      ? {v}\n      : x"),
    "request-header-value": (
        "      content-type: application/json\n    body",
        "      x: {v}\n    body",
    ),
    "status": ("    status: 200", "    status: {v}"),
    "body": (
        "    body:\n      json:\n        choices:\n        - message:\n            content: hi\n"
        "      style: spaced",
        "    body: {v}",
    ),
    "json-body-value": ("            content: hi", "            content: {v}"),
    "json-body-key": ("            content: hi", "            ? {v}\n            : hi"),
    "sse-data": ("        - data: '[DONE]'", "        - data: {v}"),
    "key": ("- key: ", "- key: {v}\n  old_key: "),
    "url": ("    url: https://api.openai.com/v1/chat/completions", "    url: {v}"),
    "recorded_at": ("  recorded_at: ", "  recorded_at: {v}\n  old_recorded_at: "),
    "duration": ("  duration: 0.25", "  duration: {v}"),
    "ttl": ("  duration: 0.25", "  duration: 0.25\n  ttl: {v}"),
    "top-level-key": ("version: 1", "version: 1\n? {v}\n: 1"),
}


def odd_cassettes(folder: Path, sample: str) -> list[Path]:
    paths = []
    for place, (old, new) in PLACES.items():
        assert old in sample, place
        for kind, value in ODD_VALUES.items():
            text = sample.replace(old, new.format(v=value), 1)
            paths.append(write(folder, f"{place}.{kind}", text))
    return paths


def test_odd_types_load_and_replay_or_are_refused_with_the_file_named(
    tmp_path: Path, sample: str
) -> None:
    loaded = refused = 0
    for path in odd_cassettes(tmp_path, sample):
        try:
            cassette = Cassette.load(path)
        except CassetteError as exc:
            message = str(exc)
        else:
            message = ""
        if message:
            assert message.startswith(f"{path}"), message
            refused += 1
            continue
        loaded += 1
        for entry in cassette:
            response = entry.to_response()  # what a replay sends back
            assert isinstance(response.status, int)
            assert all(isinstance(chunk, bytes) for chunk in response.chunks)
        assert Cassette.load(path).render()  # what a record run writes back
    # Both outcomes occur: the table is not trivially one-sided.
    assert loaded > 0
    assert refused > 0


def test_odd_types_never_crash_check_show_or_list(tmp_path: Path, sample: str) -> None:
    for path in odd_cassettes(tmp_path, sample):
        result = check_file(path)
        for problem in result.problems:
            assert problem.startswith(f"{path}:"), problem
        for command in ("check", "show", "list"):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = _cli.main([command, str(path)])
            assert code in (0, 1), (command, path, err.getvalue())
            if code:
                assert str(path) in err.getvalue() + out.getvalue(), (command, path)


def test_the_check_command_names_every_hostile_file(tmp_path: Path, sample: str) -> None:
    folder = tmp_path / "cassettes"
    folder.mkdir()
    hostile = [
        write(folder, "tag", sample.replace("status: 200", "status: !!python/name:os.system", 1)),
        write(folder, "laughs", nested_aliases() + "version: 1\nentries: []\n"),
        write(folder, "deep", sample.replace("'[DONE]'", "[" * 10_000, 1)),
        write(folder, "binary", sample.replace("content: hi", "content: !!binary aGk=", 1)),
    ]
    with (folder / "huge.yaml").open("wb") as handle:
        handle.truncate(MAX_SIZE + 1)
    hostile.append(folder / "huge.yaml")
    result = llm_cache("check", *map(str, hostile), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for path in hostile:
        assert f"{path}:" in result.stdout + result.stderr, path


# -- a test replaying a hostile cassette ----------------------------------------------------

TEST = """
import os, httpx, pytest

@pytest.mark.llm_cache
def test_chat():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    httpx.post(os.environ["FAKE_URL"] + "/v1/chat/completions", json=body)
"""
CASSETTE = "cassettes/test_hostile/test_chat.yaml"


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        (nested_aliases() + "version: 1\nentries: []\n", NO_ALIASES),
        (
            "version: 1\nentries:\n- !!python/object/apply:os.system ['touch ran']\n",
            "could not determine a constructor for the tag",
        ),
    ],
    ids=["billion-laughs", "python-tag"],
)
@pytest.mark.parametrize("mode", ["replay", "auto"])
def test_replaying_a_hostile_cassette_fails_and_changes_nothing(
    suite: Suite, hostile: str, expected: str, mode: str
) -> None:
    suite.write("test_hostile.py", TEST)
    path = suite.path / CASSETTE
    path.parent.mkdir(parents=True)
    path.write_text(hostile, encoding="utf-8")
    before = {p: p.read_bytes() for p in suite.path.rglob("*") if p.is_file()}
    result = suite.run(f"--llm-cache={mode}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert CASSETTE in result.stdout.str()
    assert expected in result.stdout.str()
    after = {p: p.read_bytes() for p in suite.path.rglob("*") if p.is_file()}
    assert after == before
    assert suite.upstream() == 0


def test_check_refuses_an_oversized_file_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_SIZE + 1)  # sparse: no disk used, and never read
    result = check_file(path)
    assert len(result.problems) == 1
    assert str(path) in result.problems[0]
    assert "over the limit" in result.problems[0]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_check_refuses_a_link_to_a_device(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.symlink_to("/dev/zero")
    result = check_file(path)
    assert len(result.problems) == 1
    assert "not a regular file" in result.problems[0]
