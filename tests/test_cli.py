"""The ``llm-cache`` command on real files: output and exit status of every command."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cassette_samples import FAKE_OPENAI_KEY, chat_entry, line_of, llm_cache, write_cassette

from pytest_llmcache._cassette import parse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two cassettes (one with an expired entry), plus YAML files that are not cassettes."""
    folder = tmp_path / "tests" / "cassettes" / "test_chat"
    write_cassette(
        folder / "test_old.yaml",
        chat_entry("Hello", days_old=3, ttl=3600),
        chat_entry("Bye", days_old=1),
    )
    write_cassette(folder / "test_stream.yaml", chat_entry("Hi", stream=True))
    (tmp_path / "docker-compose.yaml").write_text('version: "3"\nservices:\n  app: {}\n')
    (folder / "test_vcr.yaml").write_text("interactions: []\nversion: 1\n")
    (tmp_path / ".hidden").mkdir()
    write_cassette(tmp_path / ".hidden" / "skipped.yaml", chat_entry())
    return tmp_path


def assert_one_error_line(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("llm-cache: error: "), lines[0]
    for part in parts:
        assert part in lines[0]
    assert "Traceback" not in result.stderr


# -- entry points ---------------------------------------------------------------------------


def test_console_script_points_at_main() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (script,) = [s for s in scripts if s.name == "llm-cache"]
    assert script.value == "pytest_llmcache._cli:main"


def test_without_a_command_it_prints_usage_and_exits_2(tmp_path: Path) -> None:
    result = llm_cache(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: llm-cache")


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = llm_cache("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("list", "show", "check", "prune", "import-vcr"):
        assert command in result.stdout


# -- list -----------------------------------------------------------------------------------


def test_list_shows_each_cassette_and_skips_other_yaml(tree: Path) -> None:
    result = llm_cache("list", cwd=tree)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CASSETTE", "ENTRIES", "OLDEST", "EXPIRED", "SIZE"]
    old = next(line for line in lines if "test_old.yaml" in line).split()
    assert old[:4] == ["tests/cassettes/test_chat/test_old.yaml", "2", "3d", "1"]
    stream = next(line for line in lines if "test_stream.yaml" in line).split()
    assert stream[1] == "1"
    assert re.fullmatch(r"\d+s", stream[2]), "recorded seconds ago"
    assert stream[3] == "0"
    assert not any(n in result.stdout for n in ("docker-compose", "test_vcr", "skipped"))
    assert lines[-1].startswith("2 cassettes, 3 entries, 1 expired, ")


def test_list_json_is_for_scripts(tree: Path) -> None:
    result = llm_cache("list", "--json", "tests", cwd=tree)
    assert result.returncode == 0, result.stderr
    rows = {row["path"]: row for row in json.loads(result.stdout)}
    old = rows["tests/cassettes/test_chat/test_old.yaml"]
    assert old["entries"] == 2
    assert old["expired"] == 1
    assert old["bytes"] == (tree / old["path"]).stat().st_size
    assert 3 * 86400 - 60 < old["oldest_age_seconds"] < 3 * 86400 + 60
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", old["oldest_recorded_at"])


def test_list_of_an_empty_folder(tmp_path: Path) -> None:
    result = llm_cache("list", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "no cassettes under .\n"


def test_list_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = llm_cache("list", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "llm-cache: error: nope: no such file or directory\n"


def test_list_reports_a_corrupt_cassette_and_lists_the_rest(tree: Path) -> None:
    broken = tree / "tests" / "cassettes" / "test_chat" / "test_broken.yaml"
    broken.write_text("version: 1\nentries:\n- key: [unclosed\n")
    result = llm_cache("list", cwd=tree)
    assert result.returncode == 1
    assert_one_error_line(result, "tests/cassettes/test_chat/test_broken.yaml:", "YAML")
    assert "test_old.yaml" in result.stdout


# -- show -----------------------------------------------------------------------------------


def test_show_prints_request_response_and_stream_events(tree: Path) -> None:
    path = "tests/cassettes/test_chat/test_stream.yaml"
    result = llm_cache("show", path, cwd=tree)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{path}: entry 1 of 1\n")
    assert "  request:   POST https://api.openai.com/v1/chat/completions\n" in out
    assert '      "model": "gpt-4o",\n' in out, "the request body as indented JSON"
    assert "  response:  200\n" in out
    assert "    content-type: text/event-stream\n" in out
    assert "  body: stream of 3 events in 3 chunks\n" in out
    assert '    1. message  delta {"role":"assistant"}\n' in out
    assert '    2. message  text "Echo: Hi"\n' in out
    assert "    3. message  [DONE]\n" in out


def test_show_with_a_key_prefix_shows_only_that_entry(tree: Path) -> None:
    path = tree / "tests" / "cassettes" / "test_chat" / "test_old.yaml"
    first, second = parse(path)
    result = llm_cache("show", str(path), second.key[:8], cwd=tree)
    assert result.returncode == 0, result.stderr
    assert "entry 2 of 2" in result.stdout
    assert f"key:       {second.key}" in result.stdout
    assert first.key not in result.stdout
    assert '"content": "Bye"' in result.stdout
    assert "ttl" not in result.stdout


def test_show_of_all_entries_marks_the_expired_one(tree: Path) -> None:
    result = llm_cache("show", "tests/cassettes/test_chat/test_old.yaml", cwd=tree)
    assert result.returncode == 0
    assert "entry 1 of 2" in result.stdout
    assert "entry 2 of 2" in result.stdout
    assert re.search(r"recorded:  \S+Z \(3d ago\), ttl 3600s, expired\n", result.stdout)


def test_show_of_an_unknown_key_fails(tree: Path) -> None:
    result = llm_cache("show", "tests/cassettes/test_chat/test_old.yaml", "zzz", cwd=tree)
    assert result.returncode == 1
    assert_one_error_line(result, "test_old.yaml", "no entry whose key starts with 'zzz'")


def test_show_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = llm_cache("show", "gone.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, "gone.yaml: no such file")


def test_show_refuses_an_unknown_version(tmp_path: Path) -> None:
    (tmp_path / "future.yaml").write_text("version: 99\nentries: []\n")
    result = llm_cache("show", "future.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert_one_error_line(result, "future.yaml: cassette version 99 is not supported")


# -- check ----------------------------------------------------------------------------------


def test_check_reports_the_problem_of_each_damaged_entry_and_checks_the_others(
    tmp_path: Path,
) -> None:
    path = write_cassette(tmp_path / "c.yaml", chat_entry("a"), chat_entry("b"), chat_entry("c"))
    first, second, third = path.read_text().split("- key: ")[1:]
    first = first.replace('"content": "a"\n', '"content": "a",\n')  # a trailing comma
    key = FAKE_OPENAI_KEY  # a hand edit: the recorder refuses it
    asked, _, answered = second.rpartition('"content": "b"')  # the answer's, not the prompt's
    second = f'{asked}"content": "{key}"{answered}'
    third = third.replace("  response: |\n    200\n", "  response: |\n    abc\n")
    text = "version: 2\nentries:\n" + "".join("- key: " + e for e in (first, second, third))
    path.write_text(text)
    result = llm_cache("check", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    problems = result.stdout.splitlines()
    assert len(problems) == 3, result.stdout
    # The JSON error on its own line of the file: the one after the answer's trailing comma.
    broken = text[: text.rindex('"content": "a",')].count("\n") + 2
    assert problems[0] == (
        f"c.yaml:{broken}: entry: response_json is not valid JSON: "
        "Expecting property name enclosed in double quotes (column 7)"
    )
    assert problems[1].startswith(f"c.yaml:{line_of(text, key)}: entry 2: value shaped like")
    assert problems[2].startswith(f"c.yaml:{line_of(text, third[:32])}: entry: response needs")
    assert key not in result.stdout + result.stderr


def test_check_passes_clean_cassettes(tree: Path) -> None:
    result = llm_cache("check", cwd=tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "2 cassette(s), 3 entries: no problems\n"


def test_check_takes_several_files_as_pre_commit_passes_them(tree: Path) -> None:
    folder = tree / "tests" / "cassettes" / "test_chat"
    (folder / "test_future.yaml").write_text("version: 99\nentries: []\n")
    names = [f"tests/cassettes/test_chat/{n}" for n in ("test_old.yaml", "test_future.yaml")]
    result = llm_cache("check", *names, cwd=tree)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "tests/cassettes/test_chat/test_future.yaml:1: cassette version 99 is not supported; "
        "this pytest-llmcache reads versions 1 and 2 (upgrade pytest-llmcache, or re-record the "
        "file)"
    ]
    assert "1 problem(s) in 2 cassette(s)" in result.stderr


def test_check_places_a_yaml_error_on_its_line(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("version: 1\nentries:\n- key: a\n  request: [x\n")
    result = llm_cache("check", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert re.match(r"c\.yaml:\d+: not a valid cassette \(YAML error", result.stdout)
    assert "Traceback" not in result.stderr


def test_check_places_a_schema_error_on_its_entry(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "c.yaml", chat_entry("a"), chat_entry("b"))
    text = path.read_text()
    second = text.index("- key:", text.index("- key:") + 1)
    status = "  response: |\n    200\n"
    assert status in text[second:]
    path.write_text(text[:second] + text[second:].replace(status, "  response: |\n    many\n"))
    result = llm_cache("check", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    expected_line = text.count("\n", 0, second) + 1
    assert result.stdout.splitlines() == [
        f"c.yaml:{expected_line}: entry: response needs a three-digit status on its first "
        "line, got 'many'"
    ]


def test_check_names_a_secret_header_and_its_line(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "c.yaml", chat_entry("a"), chat_entry("b"))
    text = path.read_text()
    second = text.index("- key:", text.index("- key:") + 1)
    request = "  request: |\n    POST https://api.openai.com/v1/chat/completions\n"
    assert request in text[second:]
    text = text[:second] + text[second:].replace(
        request, request + "    authorization: Bearer abc123\n", 1
    )
    path.write_text(text)
    result = llm_cache("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    line = text.count("\n", 0, text.index("authorization:")) + 1
    assert result.stdout.splitlines() == [
        f"c.yaml:{line}: entry 2: request header 'authorization' must not be committed "
        "(it carries a credential, a cookie or an account id)"
    ]


def test_check_names_a_credential_in_a_url(tmp_path: Path) -> None:
    url = "https://generativelanguage.googleapis.com/v1/models?key=abcdef123456"
    path = write_cassette(tmp_path / "c.yaml", chat_entry("a", url=url))
    text = path.read_text()
    assert "abcdef123456" not in text, "recording redacts it"
    assert "key=" not in text, "recording leaves the parameter out"
    path.write_text(text.replace("/v1/models", "/v1/models?key=abcdef123456"))
    result = llm_cache("check", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    line = line_of(path.read_text(), "key=abcdef")
    assert result.stdout.splitlines() == [
        f"c.yaml:{line}: entry 1: request URL carries the secret query parameter 'key'"
    ]


def test_check_refuses_a_vcrpy_cassette_named_explicitly(tree: Path) -> None:
    name = "tests/cassettes/test_chat/test_vcr.yaml"
    result = llm_cache("check", name, cwd=tree)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{name}:1: a vcrpy / pytest-recording cassette, not a pytest-llmcache one; "
        "convert it with `llm-cache import-vcr`"
    ]
    listed = llm_cache("list", name, cwd=tree)
    assert listed.returncode == 1
    assert_one_error_line(listed, name, "llm-cache import-vcr")


def test_check_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = llm_cache("check", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, "missing.yaml: no such file or directory")


def test_pre_commit_hook_runs_check_on_cassette_files() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "llm-cache-check"
    assert hook["entry"] == "llm-cache check"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    files = re.compile(hook["files"])
    assert files.search("tests/cassettes/test_chat/test_one.yaml")
    assert files.search("tests/cassettes/test_chat/test_one.yml")
    assert not files.search("tests/test_chat.py")
    assert not files.search("config/settings.yaml")


# -- prune ----------------------------------------------------------------------------------


def test_prune_dry_run_changes_no_byte(tree: Path) -> None:
    path = tree / "tests" / "cassettes" / "test_chat" / "test_old.yaml"
    before = path.read_bytes()
    result = llm_cache("prune", "--older-than", "2d", "--dry-run", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == before
    assert re.search(
        r"test_old\.yaml: would remove POST https://api\.openai\.com/v1/chat/completions "
        r"\(key \w{12}, recorded \S+, 3d old\)",
        result.stdout,
    )
    assert result.stdout.endswith("would remove 1 entries from 1 cassette(s)\n")


def test_prune_older_than_rewrites_the_cassette(tree: Path) -> None:
    path = tree / "tests" / "cassettes" / "test_chat" / "test_old.yaml"
    kept = parse(path)[1]
    result = llm_cache("prune", "tests", "--older-than", "2d", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert "removed POST" in result.stdout
    (left,) = parse(path)
    assert left.same_exchange(kept)
    assert left.recorded_at == kept.recorded_at
    assert not list(path.parent.glob(".*.tmp")), "no temporary file left behind"


def test_prune_expired_removes_only_expired_entries(tree: Path) -> None:
    path = tree / "tests" / "cassettes" / "test_chat" / "test_old.yaml"
    result = llm_cache("prune", "--expired", cwd=tree)
    assert result.returncode == 0, result.stderr
    assert "expired, ttl 3600s" in result.stdout
    assert [e.ttl for e in parse(path)] == [None]
    assert len(parse(tree / "tests" / "cassettes" / "test_chat" / "test_stream.yaml")) == 1


def test_prune_deletes_a_cassette_left_empty(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "c.yaml", chat_entry(days_old=40))
    result = llm_cache("prune", "c.yaml", "--older-than", "30d", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "c.yaml: deleted (no entries left)" in result.stdout
    assert not path.exists()


def test_prune_needs_something_to_remove(tmp_path: Path) -> None:
    result = llm_cache("prune", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, "--older-than AGE and/or --expired")


def test_prune_refuses_a_bad_age(tmp_path: Path) -> None:
    result = llm_cache("prune", "--older-than", "3 weeks", cwd=tmp_path)
    assert result.returncode == 2
    assert_one_error_line(result, "--older-than", "'3 weeks'")


def test_prune_leaves_a_corrupt_cassette_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nentries:\n- key: [\n")
    before = path.read_bytes()
    result = llm_cache("prune", "c.yaml", "--older-than", "1d", cwd=tmp_path)
    assert result.returncode == 1
    assert_one_error_line(result, "c.yaml:")
    assert path.read_bytes() == before


# -- import-vcr without vcrpy ---------------------------------------------------------------


def test_import_vcr_says_how_to_install_vcrpy(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("interactions: []\nversion: 1\n")
    hide_vcrpy = (
        "import sys; sys.modules['vcr'] = None; "
        "from pytest_llmcache._cli import main; raise SystemExit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_vcrpy, "import-vcr", "c.yaml", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert_one_error_line(result, "pip install vcrpy")
    assert not (tmp_path / "out").exists()
