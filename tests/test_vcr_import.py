"""Migrating from pytest-recording: record with it, convert, replay with this plugin offline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from cassette_samples import llm_cache
from conftest import Suite
from vcr_samples import vcr_request, vcr_response, write_vcr

from pytest_llmcache._cassette import parse
from pytest_llmcache._exchange import Request
from pytest_llmcache._key import KeyOptions, request_key

USER_TESTS = """
    import json, os
    import httpx, pytest, requests

    URL = os.environ["FAKE_URL"]
    HIT = os.environ.get("EXPECT_HIT") == "1"
    BODY = {"model": "gpt-fake", "messages": [{"role": "user", "content": "Hello"}]}

    def cache_status(response):
        return response.headers.get("x-llm-cache-status")

    @pytest.mark.vcr
    @pytest.mark.llm_cache
    def test_chat_httpx():
        response = httpx.post(URL + "/v1/chat/completions", json=BODY)
        assert response.json()["choices"][0]["message"]["content"] == "Echo: Hello"
        assert cache_status(response) == ("HIT" if HIT else None)

    @pytest.mark.vcr
    @pytest.mark.llm_cache
    def test_gzip_httpx():
        body = {"model": "text-embedding-fake", "input": "hi", "encoding_format": "float"}
        response = httpx.post(URL + "/gzip/v1/embeddings", json=body)
        assert len(response.json()["data"][0]["embedding"]) == 4
        assert cache_status(response) == ("HIT" if HIT else None)

    @pytest.mark.vcr
    @pytest.mark.llm_cache
    def test_gzip_requests():
        response = requests.post(URL + "/gzip/v1/chat/completions", json=BODY)
        assert response.json()["choices"][0]["message"]["content"] == "Echo: Hello"
        assert cache_status(response) == ("HIT" if HIT else None)

    @pytest.mark.vcr
    @pytest.mark.llm_cache
    def test_stream_httpx():
        body = {**BODY, "stream": True}
        with httpx.stream("POST", URL + "/v1/chat/completions", json=body) as response:
            chunks = list(response.iter_bytes())
            assert cache_status(response) == ("HIT" if HIT else None)
        events = [e for e in b"".join(chunks).decode().split("\\n\\n") if e]
        assert events[-1] == "data: [DONE]"
        words = [json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1]]
        assert "".join(words) == "Echo: Hello"
        if HIT:
            assert len(chunks) == len(events), "one chunk per event, as the provider sent"
"""


def test_pytest_recording_cassettes_replay_offline_after_import(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write("test_migrated.py", USER_TESTS)
    recorded = suite.pytester.runpytest("-p", "pytest_recording.plugin", "--record-mode=once")
    recorded.assert_outcomes(passed=4)
    assert suite.upstream() == 4
    vcr_dir = suite.path / "cassettes" / "test_migrated"
    sources = {p.name: p.read_bytes() for p in vcr_dir.glob("*.yaml")}
    assert len(sources) == 4
    assert b"!!binary" in sources["test_gzip_httpx.yaml"], "httpx bodies stay gzipped in vcrpy"

    result = llm_cache("import-vcr", "cassettes", "llm_cassettes", cwd=suite.path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "converted 4 cassette(s), 4 entries, into llm_cassettes\n"
    assert {p.name: p.read_bytes() for p in vcr_dir.glob("*.yaml")} == sources
    converted = suite.path / "llm_cassettes" / "test_migrated"
    gz_text = (converted / "test_gzip_httpx.yaml").read_text()
    assert "content-encoding" not in gz_text
    assert '"embedding": [\n' in gz_text, "stored decoded, as JSON text"
    (gz,) = parse(converted / "test_gzip_httpx.yaml")
    assert len(gz.response["body"]["json"]["data"][0]["embedding"]) == 4
    assert "\n  response_sse: |\n    data: {" in (converted / "test_stream_httpx.yaml").read_text()
    (stream,) = parse(converted / "test_stream_httpx.yaml")
    assert [list(c) for c in stream.response["body"]["chunks"]] == [["sse"]] * 4
    # vcrpy's requests stub stores the body decoded but keeps "content-encoding: gzip".
    (from_requests,) = parse(converted / "test_gzip_requests.yaml")
    assert "content-encoding" not in from_requests.response["headers"]
    assert from_requests.response["body"]["json"]["object"] == "chat.completion"

    suite.write("pytest.ini", "[pytest]\nllm_cache_dir = llm_cassettes\n")
    monkeypatch.setenv("EXPECT_HIT", "1")
    replayed = suite.run()
    replayed.assert_outcomes(passed=4)
    replayed.stdout.fnmatch_lines(["*4 replayed, 0 recorded, 0 missed*"])
    assert suite.upstream() == 4, "no request reached the provider on replay"


def test_in_place_replaces_each_cassette_where_the_plugin_looks(tmp_path: Path) -> None:
    source = write_vcr(
        tmp_path / "cassettes" / "test_a" / "test_one.yaml",
        (vcr_request(), vcr_response(b'{"ok":true}')),
    )
    refused = llm_cache("import-vcr", "cassettes", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.startswith("llm-cache: error: cassettes/test_a/test_one.yaml: the ")
    assert "give a DEST folder, or pass --in-place" in refused.stderr
    assert "interactions:" in source.read_text(), "untouched without --in-place"

    result = llm_cache("import-vcr", "cassettes", "--in-place", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (entry,) = parse(source)
    assert entry.response["body"] == {"json": {"ok": True}}


def test_converting_again_changes_no_byte(tmp_path: Path) -> None:
    write_vcr(tmp_path / "vcr" / "t.yaml", (vcr_request(), vcr_response(b'{"a":1}')))
    assert llm_cache("import-vcr", "vcr", "out", cwd=tmp_path).returncode == 0
    first = (tmp_path / "out" / "t.yaml").read_bytes()
    assert llm_cache("import-vcr", "vcr", "out", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "t.yaml").read_bytes() == first


def test_binary_and_gzip_bodies_keep_their_bytes(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    payload = json.dumps({"data": [{"embedding": "AAAA"}]}).encode()
    write_vcr(
        tmp_path / "t.yaml",
        (vcr_request({"n": 1}), vcr_response(png, headers={"content-type": ["image/png"]})),
        (
            vcr_request({"n": 2}),
            vcr_response(
                gzip.compress(payload),
                headers={"content-type": ["application/json"], "content-encoding": ["gzip"]},
            ),
        ),
    )
    result = llm_cache("import-vcr", "t.yaml", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image, embedding = parse(tmp_path / "out" / "t.yaml")
    assert "base64" in image.response["body"]
    assert image.to_response().body == png
    assert embedding.to_response().body == payload
    assert "content-encoding" not in embedding.response["headers"]


def test_json_cassettes_convert_to_yaml_beside_them(tmp_path: Path) -> None:
    write_vcr(tmp_path / "c" / "t.json", (vcr_request(), vcr_response(b"plain text")))
    result = llm_cache("import-vcr", "c", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (entry,) = parse(tmp_path / "c" / "t.yaml")
    assert entry.response["body"] == {"text": "plain text"}


def test_repeated_requests_keep_their_order(tmp_path: Path) -> None:
    write_vcr(
        tmp_path / "t.yaml",
        (vcr_request(), vcr_response(b'{"n":1}')),
        (vcr_request(), vcr_response(b'{"n":2}')),
    )
    assert llm_cache("import-vcr", "t.yaml", "out", cwd=tmp_path).returncode == 0
    first, second = parse(tmp_path / "out" / "t.yaml")
    assert first.key == second.key
    assert [first.response["body"], second.response["body"]] == [
        {"json": {"n": 1}},
        {"json": {"n": 2}},
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("interactions: [\n", "not a readable vcrpy cassette"),
        ("interactions: []\nversion: 2\n", "vcrpy cassette format version 2 is not supported"),
        ("interactions:\n- request: {}\nversion: 1\n", "interaction 1 is malformed"),
        ("version: 1\nentries: []\n", "already a pytest-llmcache cassette"),
    ],
)
def test_a_bad_source_file_is_one_error_line(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    result = llm_cache("import-vcr", "bad.yaml", "out", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"llm-cache: error: bad.yaml: {problem}")
    assert (tmp_path / "bad.yaml").read_text() == text
    assert not (tmp_path / "out").exists()


def test_a_corrupt_gzip_body_fails_that_file_only(tmp_path: Path) -> None:
    corrupt = vcr_response(b"\x1f\x8b\x08\x00broken", headers={"content-encoding": ["gzip"]})
    write_vcr(tmp_path / "src" / "bad.yaml", (vcr_request(), corrupt))
    write_vcr(tmp_path / "src" / "good.yaml", (vcr_request(), vcr_response(b"{}")))
    result = llm_cache("import-vcr", "src", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "llm-cache: error: src/bad.yaml: interaction 1: the response body is 'gzip'-encoded "
        "and does not decode here (corrupt, or needs brotli / zstandard installed)"
    )
    assert (tmp_path / "out" / "good.yaml").exists()
    assert not (tmp_path / "out" / "bad.yaml").exists()


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    result = llm_cache("import-vcr", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "llm-cache: error: nowhere: no such file or directory\n"


def test_a_folder_without_vcrpy_cassettes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.yaml").write_text("a: 1\n")
    result = llm_cache("import-vcr", "src", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert "src: no vcrpy cassettes found" in result.stderr


def test_long_runs_report_progress(tmp_path: Path) -> None:
    for n in range(101):
        write_vcr(tmp_path / "src" / f"t{n:03}.yaml", (vcr_request({"n": n}), vcr_response(b"{}")))
    result = llm_cache("import-vcr", "src", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "import-vcr: 100/101 files\n"
    assert result.stdout == "converted 101 cassette(s), 101 entries, into out\n"
    assert len(list((tmp_path / "out").glob("*.yaml"))) == 101


def test_key_options_match_what_the_tests_compute(tmp_path: Path) -> None:
    body = {"model": "gpt-4o", "user": "run-42"}
    request = vcr_request(body, headers={"X-Tenant": "acme"})
    write_vcr(tmp_path / "t.yaml", (request, vcr_response(b"{}")))
    args = ("--ignore-field", "user", "--match-header", "X-Tenant")
    result = llm_cache("import-vcr", "t.yaml", "out", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (entry,) = parse(tmp_path / "out" / "t.yaml")
    live = Request(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        (("accept", "*/*"), ("content-type", "application/json"), ("x-tenant", "acme")),
        json.dumps({"user": "another-run", "model": "gpt-4o"}).encode(),
    )
    assert entry.key == request_key(live, KeyOptions(("user",), ("x-tenant",)))
    assert entry.key != request_key(live)
    assert entry.request["headers"]["x-tenant"] == "acme"
