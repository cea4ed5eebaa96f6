"""A cassette from an untrusted pull request is read safely (SPEC §6, §9).

No tag runs code, no alias multiplies work, size and nesting are bounded, and odd YAML types
either load and work everywhere or are refused with the file named: never a traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path

import pytest
from cassette_samples import chat_entry, llm_cache, write_cassette, write_v1_cassette
from conftest import Suite

from pytest_llmcache import _cli
from pytest_llmcache._cassette import Cassette, CassetteError
from pytest_llmcache._check import check_file
from pytest_llmcache._yaml import MAX_SIZE

NO_ALIASES = "anchors and aliases (&name, *name) are not allowed in cassettes"
RECORDED_AT = "'2024-05-01T12:00:00Z'"


def sample_text(folder: Path, version: int) -> str:
    """The text of a real two-entry cassette (a JSON answer and an SSE stream).

    Version 2 is what recording writes; version 1, with bodies as YAML structures, is still
    read. Both are covered: what is YAML in one may be plain text in the other.
    """
    entries = (chat_entry("hi"), chat_entry("yo", stream=True))
    save = write_cassette if version == 2 else write_v1_cassette
    text = save(folder / f"sample-v{version}.yaml", *entries).read_text("utf-8")
    assert text.startswith(f"version: {version}\n")
    # A fixed time, so that a place in the text can be named exactly.
    return re.sub(r"(?m)^  recorded_at: '[^']*'$", f"  recorded_at: {RECORDED_AT}", text)


@pytest.fixture
def sample(tmp_path: Path) -> str:
    """The text of the two-entry cassette in version 1."""
    return sample_text(tmp_path, 1)


@pytest.fixture
def sample_v2(tmp_path: Path) -> str:
    """The text of the two-entry cassette in version 2."""
    return sample_text(tmp_path, 2)


def in_entry(text: str, number: int, old: str, new: str) -> str:
    """``text`` with the first ``old`` of its ``number``-th entry (1-based) made ``new``.

    Entry 0 is the top of the file: the first ``old`` of the whole text.
    """
    start = -1
    for _ in range(number):
        start = text.index("\n- key: ", start + 1)
    start = max(start, 0)
    assert old in text[start:], old
    return text[:start] + text[start:].replace(old, new, 1)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(path: Path) -> str:
    """The message reading ``path`` is refused with (it must be refused).

    A file is read two ways: whole, every entry checked at once (``record``, ``auto``,
    ``check``), and one entry at a time, when a replay uses it. Both must refuse it, alike.
    """
    with pytest.raises(CassetteError) as caught:
        Cassette.load(path, lazy=False)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    with pytest.raises(CassetteError) as used:
        use_every_entry(path)
    assert str(used.value) == message
    return message


def use_every_entry(path: Path) -> None:
    """Read ``path`` as a replay does, one entry at a time, and use each entry."""
    for entry in Cassette.load(path):
        entry.to_response()
        _ = entry.recorded_at, entry.request


def line_number(text: str, needle: str) -> int:
    """The 1-based line of ``text`` where ``needle`` first occurs."""
    return text[: text.index(needle)].count("\n") + 1


def nested_aliases(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each level lists the one before ``width`` times."""
    lines = ['a0: &a0 ["' + "lol" * 10 + '"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def indented(text: str, spaces: int) -> str:
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


# In version 2 an entry holds its messages as text: a tag, alias or odd value can only be
# put in the entry's own fields or at the top of the file, which are still YAML.
TAG_PLACES = {
    "v1-header-value": (1, 2, "content-type: text/event-stream", "{v}"),
    "v1-status": (1, 1, "status: 200", "status: {v}"),
    "v2-entry-field": (2, 2, "  duration: 0.25", "  duration: {v}"),
    "v2-text-block": (2, 2, "  response_sse: |", "  response_sse: {v}\n  x: |"),
    "v2-top-level": (2, 0, "version: 2\n", "version: 2\nnote: {v}\n"),
}


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
@pytest.mark.parametrize("place", TAG_PLACES)
def test_no_tag_runs_code(tmp_path: Path, tagged: str, place: str) -> None:
    version, number, old, new = TAG_PLACES[place]
    marker = tmp_path / "ran"
    value = tagged.format(marker=marker)
    text = in_entry(sample_text(tmp_path, version), number, old, new.format(v=value))
    path = write(tmp_path, "tagged", text)
    message = refusal(path)
    assert f"{path}:{line_number(text, value)}: not a valid cassette" in message
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
        # Version 2: at the top of the file, and in the fields of an entry read when used.
        "version: 2\n" + nested_aliases() + "entries: []\n",
        "version: 2\nentries:\n- key: abc\n" + indented(nested_aliases(), 2),
        "version: 2\nentries:\n- key: abc\n  request: &loop [*loop]\n",
    ],
    ids=[
        "billion-laughs-top",
        "billion-laughs-in-body",
        "aliased-string",
        "self-reference",
        "v2-billion-laughs-top",
        "v2-billion-laughs-in-entry",
        "v2-self-reference-in-entry",
    ],
)
def test_aliases_are_refused_quickly(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "bomb", text)
    started = time.perf_counter()
    message = refusal(path)
    # Well under a second even on a loaded machine; expanded, the bombs would take minutes.
    assert time.perf_counter() - started < 2
    assert NO_ALIASES in message
    anchor_line = next(n for n, line in enumerate(text.splitlines(), 1) if "&" in line)
    assert message.startswith(f"{path}:{anchor_line}:")


def merge_bomb() -> str:
    """Each level merges the one before nine times: flattened, level 9 holds 9**9 pairs."""
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for level in range(1, 10):
        merged = ", ".join([f"*m{level - 1}"] * 9)
        lines.append(f"m{level}: &m{level} {{<<: [{merged}], k{level}: 1}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        merge_bomb() + "version: 1\n",
        "version: 2\nentries:\n- key: abc\n" + indented(merge_bomb(), 2),
    ],
    ids=["v1-top", "v2-in-entry"],
)
def test_merge_keys_are_refused_before_they_grow(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "merge", text)
    started = time.perf_counter()
    message = refusal(path)
    # Merged out, level 9 alone would hold 9**9 pairs: minutes of work, gigabytes of memory.
    assert time.perf_counter() - started < 2
    assert f"{path}:{line_number(text, '<<')}: " in message
    assert "merge keys (<<) are not allowed in cassettes" in message


@pytest.mark.parametrize(
    ("version", "number", "old", "new"),
    [
        (1, 1, "    status: 200\n", "    <<: {status: 200}\n"),
        (2, 2, "  duration: 0.25\n", "  <<: {duration: 0.25}\n"),
        (2, 0, "version: 2\n", "<<: {version: 2}\n"),
    ],
    ids=["v1-response", "v2-entry", "v2-top-level"],
)
def test_a_merge_key_without_alias_is_refused_too(
    tmp_path: Path, version: int, number: int, old: str, new: str
) -> None:
    text = in_entry(sample_text(tmp_path, version), number, old, new)
    message = refusal(write(tmp_path, "merge", text))
    assert f":{line_number(text, '<<')}: " in message
    assert "merge keys (<<) are not allowed" in message


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


# Where a deep value goes: (version, entry, text there, its replacement with {v} for the value).
DEEP_PLACES = {
    "v1-sse-data": (1, 2, "'[DONE]'", "{v}"),
    "v2-entry-field": (2, 2, "  duration: 0.25", "  duration: {v}"),
    "v2-top-level": (2, 0, "version: 2\n", "version: 2\nnote: {v}\n"),
}


@pytest.mark.parametrize("place", DEEP_PLACES)
@pytest.mark.parametrize(
    "body",
    ["[" * 10_000 + "]" * 10_000, "{a: " * 10_000 + "1" + "}" * 10_000],
    ids=["flow-lists", "flow-mappings"],
)
def test_very_deep_nesting_is_a_clean_error(tmp_path: Path, body: str, place: str) -> None:
    version, number, old, new = DEEP_PLACES[place]
    text = in_entry(sample_text(tmp_path, version), number, old, new.format(v=body))
    message = refusal(write(tmp_path, "deep", text))
    assert "not a valid cassette (YAML error:" in message


@pytest.mark.parametrize("version", [1, 2])
def test_very_deep_block_lists_are_a_clean_error(tmp_path: Path, version: int) -> None:
    text = sample_text(tmp_path, version) + "- " * 10_000 + "x"
    message = refusal(write(tmp_path, "deep", text))
    assert "not a valid cassette (YAML error:" in message


@pytest.mark.parametrize("place", DEEP_PLACES)
def test_nesting_past_the_limit_is_refused(tmp_path: Path, place: str) -> None:
    # 120 levels: libyaml accepts it (its own limit is 1,000); no recorded body comes close.
    version, number, old, new = DEEP_PLACES[place]
    deep = "[" * 120 + "]" * 120
    text = in_entry(sample_text(tmp_path, version), number, old, new.format(v=deep))
    message = refusal(write(tmp_path, "deep", text))
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

# The same in version 2, where a message is text and only an entry's fields and the top of
# the file are YAML: each field given the odd value in place of its own, or added.
REQUEST = "  request: |\n    POST https://api.openai.com/v1/chat/completions\n"
RESPONSE = "  response: |\n    200\n    content-type: text/event-stream\n"
STREAM_KEY = chat_entry("yo", stream=True).key
SSE = '  response_sse: |\n    data: {"choices":[{"delta":{"role":"assistant"}}]}\n'
PLACES_V2 = {
    "key": (f"- key: {STREAM_KEY}", "- key: {v}"),
    "recorded_at": (f"  recorded_at: {RECORDED_AT}", "  recorded_at: {v}"),
    "duration": ("  duration: 0.25", "  duration: {v}"),
    "ttl": ("  duration: 0.25", "  duration: 0.25\n  ttl: {v}"),
    "test": ("  duration: 0.25", "  duration: 0.25\n  test: {v}"),
    "cut_short": ("  duration: 0.25", "  duration: 0.25\n  cut_short: {v}"),
    "allow_secrets": ("  duration: 0.25", "  duration: 0.25\n  allow_secrets: {v}"),
    "allow_secrets-item": ("  duration: 0.25", "  duration: 0.25\n  allow_secrets:\n  - {v}"),
    "request": (REQUEST, "  request: {v}\n  x_request: |\n"),
    "request_json_style": ("  request_json_style: spaced", "  request_json_style: {v}"),
    "response": (RESPONSE, "  response: {v}\n  x_response: |\n"),
    "response_sse": (SSE, "  response_sse: {v}\n  x_response_sse: |\n"),
    "response_sse_eol": ("  response_sse: |", "  response_sse_eol: {v}\n  response_sse: |"),
    "response_chunks": (SSE, "  response_chunks: {v}\n  x_response_sse: |\n"),
    "response_chunks-item": (SSE, "  response_chunks:\n  - text: {v}\n  x_response_sse: |\n"),
    "unknown-field": ("  duration: 0.25", "  duration: 0.25\n  {v}: 1"),
    "top-level-key": ("version: 2\n", "version: 2\n? {v}\n: 1\n"),
}


def odd_cassettes(folder: Path) -> dict[int, list[Path]]:
    """Every odd value in every place, in each version: the files, by version."""
    paths: dict[int, list[Path]] = {1: [], 2: []}
    for version, places in ((1, PLACES), (2, PLACES_V2)):
        sample = sample_text(folder, version)
        for place, (old, new) in places.items():
            # The second entry (the stream) is the one changed in version 2.
            number = 0 if version == 1 or place == "top-level-key" else 2
            for kind, value in ODD_VALUES.items():
                text = in_entry(sample, number, old, new.format(v=value))
                paths[version].append(write(folder, f"v{version}.{place}.{kind}", text))
    return paths


def read_and_use(path: Path) -> str:
    """What replaying and recording with ``path`` meet: a refusal's message, or ``""``."""
    try:
        cassette = Cassette.load(path)
        for entry in cassette:
            response = entry.to_response()  # what a replay sends back
            assert isinstance(response.status, int)
            assert all(isinstance(chunk, bytes) for chunk in response.chunks)
            _ = entry.recorded_datetime(), entry.request
        assert cassette.render()  # what a record run writes back
    except CassetteError as exc:
        return str(exc)
    return ""


def whole_read_refusal(path: Path) -> str:
    """The message reading ``path`` whole, every entry checked, meets, or ``""``."""
    try:
        Cassette.load(path, lazy=False)
    except CassetteError as exc:
        return str(exc)
    return ""


def test_odd_types_load_and_replay_or_are_refused_with_the_file_named(tmp_path: Path) -> None:
    for version, paths in odd_cassettes(tmp_path).items():
        loaded = refused = 0
        for path in paths:
            message = read_and_use(path)
            # Read whole (record, auto, check), the file is refused alike, or not at all.
            assert whole_read_refusal(path) == message, path
            if message:
                assert message.startswith(f"{path}"), message
                refused += 1
            else:
                loaded += 1
        # Both outcomes occur: the table is not trivially one-sided.
        assert loaded > 0, version
        assert refused > 0, version


def test_odd_types_never_crash_check_show_or_list(tmp_path: Path) -> None:
    for path in [p for paths in odd_cassettes(tmp_path).values() for p in paths]:
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


def test_the_check_command_names_every_hostile_file(
    tmp_path: Path, sample: str, sample_v2: str
) -> None:
    folder = tmp_path / "cassettes"
    folder.mkdir()
    tag, deep, binary = "!!python/name:os.system", "[" * 10_000, "!!binary aGk="
    hostile = [
        write(folder, "tag", sample.replace("status: 200", f"status: {tag}", 1)),
        write(folder, "laughs", nested_aliases() + "version: 1\nentries: []\n"),
        write(folder, "deep", sample.replace("'[DONE]'", deep, 1)),
        write(folder, "binary", sample.replace("content: hi", f"content: {binary}", 1)),
        # Version 2, in the second entry: each entry of a file is checked, not just the first.
        write(folder, "v2-tag", in_entry(sample_v2, 2, "0.25", tag)),
        write(
            folder,
            "v2-laughs",
            "version: 2\nentries:\n- key: abc\n" + indented(nested_aliases(), 2),
        ),
        write(folder, "v2-deep", in_entry(sample_v2, 2, "0.25", deep)),
        write(folder, "v2-binary", in_entry(sample_v2, 2, "spaced", binary)),
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
        ("version: 2\n" + nested_aliases() + "entries: []\n", NO_ALIASES),
        (
            "version: 2\nentries:\n- !!python/object/apply:os.system ['touch ran']\n",
            "could not determine a constructor for the tag",
        ),
    ],
    ids=["billion-laughs", "python-tag", "v2-billion-laughs", "v2-python-tag"],
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
