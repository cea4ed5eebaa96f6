"""Key-shaped values: ``check`` finds them, ``import-vcr`` scrubs or refuses them.

This file holds strings shaped like API keys (fakes), which is why its name says "secret".
"""

from __future__ import annotations

import json
from pathlib import Path

from cassette_samples import chat_entry, line_of, llm_cache, write_cassette
from vcr_samples import vcr_request, vcr_response, write_vcr

from pytest_llmcache._cassette import parse

FAKE_OPENAI_KEY = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKE0123"
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
