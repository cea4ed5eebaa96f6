"""Key-shaped values: ``check`` finds them, ``import-vcr`` scrubs or refuses them.

This file holds strings shaped like API keys (fakes), which is why its name says "secret".
"""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cassette_samples import FAKE_OPENAI_KEY, chat_entry, line_of, llm_cache, write_cassette
from vcr_samples import vcr_request, vcr_response, write_vcr

from pytest_llmcache._capture import make_entry
from pytest_llmcache._cassette import parse
from pytest_llmcache._cli import main
from pytest_llmcache._exchange import Request

FAKE_GOOGLE_KEY = "AIzaFAKEFAKEFAKEFAKEFAKEFAKEFAKE012345"


def test_check_finds_a_key_shape_and_its_line_without_printing_it(tmp_path: Path) -> None:
    path = write_cassette(
        tmp_path / "c.yaml",
        chat_entry("a"),
        chat_entry("b", reply={"note": "your key is KEY_GOES_HERE, keep it safe"}),
    )
    # Recording refuses key shapes, so this one is a hand edit, as a leak would be.
    path.write_text(path.read_text().replace("KEY_GOES_HERE", FAKE_OPENAI_KEY))
    result = llm_cache("check", "c.yaml", cwd=tmp_path)
    assert result.returncode == 1
    line = line_of(path.read_text(), FAKE_OPENAI_KEY)
    assert result.stdout.splitlines() == [
        f"c.yaml:{line}: entry 2: value shaped like an API key (sk-pro...) at "
        "response.body.json.note"
    ]
    assert FAKE_OPENAI_KEY not in result.stdout + result.stderr


def test_check_of_a_folder_finds_a_cassette_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Some editors put a BOM first; YAML and replay read past it, so the folder's check
    must not skip the file."""
    path = write_cassette(
        tmp_path / "cassettes" / "c.yaml",
        chat_entry("b", reply={"note": "your key is KEY_GOES_HERE, keep it safe"}),
    )
    text = path.read_text().replace("KEY_GOES_HERE", FAKE_OPENAI_KEY)
    path.write_text(text, encoding="utf-8-sig")
    result = llm_cache("check", "cassettes", cwd=tmp_path)
    assert result.returncode == 1
    assert "cassettes/c.yaml:" in result.stdout
    assert "value shaped like an API key" in result.stdout
    assert FAKE_OPENAI_KEY not in result.stdout + result.stderr


def test_check_finds_a_key_in_a_stream_event(tmp_path: Path) -> None:
    path = write_cassette(tmp_path / "c.yaml", chat_entry("KEY_GOES_HERE", stream=True))
    path.write_text(path.read_text().replace("KEY_GOES_HERE", FAKE_GOOGLE_KEY))
    result = llm_cache("check", ".", cwd=tmp_path)
    assert result.returncode == 1
    first = line_of(path.read_text(), FAKE_GOOGLE_KEY)
    assert result.stdout.startswith(f"c.yaml:{first}: entry 1: value shaped like an API key")


def test_import_vcr_drops_the_auth_header_and_scrubs_the_echoed_key(tmp_path: Path) -> None:
    request = vcr_request(headers={"authorization": f"Bearer {FAKE_OPENAI_KEY}"})
    echoed = json.dumps({"error": f"Incorrect API key provided: {FAKE_OPENAI_KEY}"}).encode()
    source = write_vcr(
        tmp_path / "vcr" / "test_chat" / "test_bad_key.yaml",
        (request, vcr_response(echoed, status=401)),
    )
    before = source.read_bytes()
    result = llm_cache("import-vcr", "vcr", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    converted = tmp_path / "out" / "test_chat" / "test_bad_key.yaml"
    text = converted.read_text()
    assert FAKE_OPENAI_KEY not in text
    assert "authorization" not in text
    (entry,) = parse(converted)
    assert entry.response["status"] == 401
    assert entry.response["body"]["json"] == {"error": "Incorrect API key provided: <redacted>"}
    assert source.read_bytes() == before
    assert llm_cache("check", "out", cwd=tmp_path).returncode == 0


def test_import_vcr_refuses_a_key_it_cannot_attribute(tmp_path: Path) -> None:
    body = json.dumps({"leaked": FAKE_GOOGLE_KEY}).encode()
    source = write_vcr(tmp_path / "c.yaml", (vcr_request(), vcr_response(body)))
    before = source.read_bytes()
    result = llm_cache("import-vcr", "c.yaml", "out", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "llm-cache: error: c.yaml: interaction 1 holds a value shaped like an API key at "
        "response.body.json.leaked; remove it from the source cassette (or re-record it) "
        "and convert again"
    ]
    assert FAKE_GOOGLE_KEY not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()
    assert source.read_bytes() == before
    assert "0 cassette(s)" in result.stdout
    assert "1 failed" in result.stdout


# -- allowing examples that look like keys ----------------------------------------------------

EXAMPLE_KEY = "sk-proj-EXAMPLE" + "0123456789abcdefghij"


def example_cassette(tmp_path: Path) -> Path:
    path = write_cassette(tmp_path / "c.yaml", chat_entry("a", reply={"code": "KEY_GOES_HERE"}))
    path.write_text(path.read_text().replace("KEY_GOES_HERE", EXAMPLE_KEY))
    return path


def run_check(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    status = main(["check", *args])
    return status, out.getvalue() + err.getvalue()


def test_check_refuses_an_unlisted_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example_cassette(tmp_path)
    status, output = run_check(".", cwd=tmp_path, monkeypatch=monkeypatch)
    assert status == 1
    assert "value shaped like an API key (sk-pro...)" in output
    assert EXAMPLE_KEY not in output


def test_check_honours_allow_secret_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example_cassette(tmp_path)
    status, output = run_check(
        ".",
        "--allow-secret",
        "AIza*",
        "--allow-secret",
        "sk-proj-EXAMPLE*",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
    )
    assert (status, output) == (0, "1 cassette(s), 1 entries: no problems\n")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\nllm_cache_allow_secrets =\n    AIza*\n    sk-proj-EXAMPLE*\n"),
        (
            "pyproject.toml",
            '[tool.pytest.ini_options]\nllm_cache_allow_secrets = ["sk-proj-EX*"]\n',
        ),
        ("tox.ini", "[pytest]\nllm_cache_allow_secrets = sk-proj-EXAMPLE*\n"),
        ("setup.cfg", "[tool:pytest]\nllm_cache_allow_secrets = sk-proj-EXAMPLE*\n"),
    ],
)
def test_check_honours_the_pytest_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    example_cassette(tmp_path / "tests" / "cassettes")
    status, output = run_check("tests", cwd=tmp_path, monkeypatch=monkeypatch)
    assert (status, output) == (0, "1 cassette(s), 1 entries: no problems\n")


def test_the_first_configuration_found_governs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest stops at the nearest pytest.ini, even one without the option.
    (tmp_path / "pytest.ini").write_text("[pytest]\nllm_cache_allow_secrets = sk-proj-EXAMPLE*\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "sub" / "tox.ini").write_text("[tox]\n")
    example_cassette(tmp_path / "sub")
    assert run_check("sub", cwd=tmp_path, monkeypatch=monkeypatch)[0] == 1
    (tmp_path / "sub" / "pytest.ini").unlink()
    assert run_check("sub", cwd=tmp_path, monkeypatch=monkeypatch)[0] == 0


def test_check_passes_an_entry_recorded_with_an_allowance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = Request("POST", "https://h/v1", (("content-type", "application/json"),), b"{}")
    entry = make_entry(
        key="k" * 32,
        request=request,
        status=200,
        headers=(("content-type", "application/json"),),
        chunks=[json.dumps({"code": EXAMPLE_KEY}).encode()],
        match_headers=(),
        ttl=None,
        duration=0.1,
        now=datetime(2024, 5, 1, tzinfo=timezone.utc),
        secrets=(),
        allow_secrets=("sk-proj-EXAMPLE*",),
    )
    write_cassette(tmp_path / "c.yaml", entry)
    assert "allow_secrets:" in (tmp_path / "c.yaml").read_text()
    assert run_check(".", cwd=tmp_path, monkeypatch=monkeypatch) == (
        0,
        "1 cassette(s), 1 entries: no problems\n",
    )


# -- credentials by name in a hand-edited cassette ------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        pytest.param(
            lambda e: e.request.update(url="https://bob:pw-123456@h.example/v1"),
            "request URL carries credentials (user:password@)",
            id="userinfo",
        ),
        pytest.param(
            lambda e: e.request.update(url="https://h.example/v1?X-Amz-Signature=abc123"),
            "request URL carries the secret query parameter 'X-Amz-Signature'",
            id="query",
        ),
        pytest.param(
            lambda e: e.request["headers"].update({"x-session-token": "abc"}),
            "request header 'x-session-token' must not be committed",
            id="request-header-by-name",
        ),
        pytest.param(
            lambda e: e.request["body"]["json"].update(auth={"client_secret": "abc"}),
            "request body field 'auth.client_secret' must not be committed",
            id="json-field",
        ),
    ],
)
def test_check_finds_credentials_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, problem: str
) -> None:
    entry = chat_entry("a")
    edit(entry)
    write_cassette(tmp_path / "c.yaml", entry)
    status, output = run_check(".", cwd=tmp_path, monkeypatch=monkeypatch)
    assert status == 1
    assert problem in output
    assert "pw-123456" not in output


def test_check_passes_a_redacted_field_and_a_response_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = chat_entry("a")
    entry.request["body"]["json"]["api_key"] = "<redacted>"
    entry.request["body"]["json"]["max_tokens"] = 5
    entry.response["headers"]["x-ratelimit-remaining-tokens"] = "1000"
    write_cassette(tmp_path / "c.yaml", entry)
    assert run_check(".", cwd=tmp_path, monkeypatch=monkeypatch)[0] == 0


def test_show_prints_no_credential_a_hand_edit_let_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = chat_entry("a", reply={"note": "KEY_GOES_HERE"})
    entry.request.update(url="https://bob:pw-123456@h.example/v1?key=query-secret-1")
    entry.request["headers"]["authorization"] = "Bearer header-secret-1"
    path = write_cassette(tmp_path / "c.yaml", entry)
    path.write_text(path.read_text().replace("KEY_GOES_HERE", FAKE_OPENAI_KEY))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["show", "c.yaml"]) == 0
    shown = out.getvalue()
    assert "request:   POST https://h.example/v1?key=<redacted>" in shown
    assert "authorization: <redacted>" in shown
    assert "sk-pro..." in shown
    for secret in ("pw-123456", "query-secret-1", "header-secret-1", FAKE_OPENAI_KEY):
        assert secret not in shown
