"""Why a call missed: the nearest recorded request and a field-level diff of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cassette_samples import chat_entry, write_cassette
from conftest import Suite

from pytest_llmcache._cassette import Cassette, Entry
from pytest_llmcache._diff import diff_requests, find_nearest, nearest_message
from pytest_llmcache._exchange import Request

URL = "https://api.openai.com/v1/chat/completions"
JSON = (("content-type", "application/json"),)
LONG = "Summarise the following report in three short bullet points for a busy reader: " * 2


def post(body: object, headers: tuple[tuple[str, str], ...] = JSON, url: str = URL) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", url, headers, raw)


def chat(content: str = "Hello", **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


CASES = [
    pytest.param(chat("Hello"), chat("Hi"), ['messages[0].content: "Hello" -> "Hi"'], id="prompt"),
    pytest.param(
        chat(temperature=0), chat(temperature=0.2), ["temperature: 0 -> 0.2"], id="number"
    ),
    pytest.param(chat(), chat(stream=True), ["stream: added true"], id="added"),
    pytest.param(chat(seed=7), chat(), ["seed: removed (was 7)"], id="removed"),
    pytest.param(chat(n=1), chat(n="1"), ['n: 1 -> "1"'], id="type-changed"),
    pytest.param(
        {"messages": [{"role": "user", "content": "a"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        ['messages[1]: added {"content": "b", "role": "user"}'],
        id="list-grew",
    ),
    pytest.param(
        chat(LONG),
        chat(LONG.replace("three", "four", 1)),
        [
            'messages[0].content: "...g report in three short bullet points for a busy read...'
            ' -> "...g report in four short bullet points for a busy reade...'
        ],
        id="long-strings-from-where-they-part",
    ),
    pytest.param(
        chat(),
        chat(tools=[{"type": "function", "function": {"name": "x" * 80}}]),
        ['tools: added [{"function": {"name": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'],
        id="long-value-cut",
    ),
    pytest.param({"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}, [], id="key-order-is-no-difference"),
    pytest.param(b"plain one", b"plain two", ['body: "plain one" -> "plain two"'], id="text"),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_body_differences(old: object, new: object, expected: list[str]) -> None:
    assert diff_requests(post(old), post(new)) == expected


def test_header_differences() -> None:
    old = post(chat(), (*JSON, ("accept", "application/json")))
    new = post(chat(), (("content-type", "application/json; charset=utf-8"), ("openai-beta", "v2")))
    assert diff_requests(old, new) == [
        'headers.accept removed (was "application/json")',
        'headers.openai-beta added: "v2"',
    ], "content-type is compared by media type"


def test_match_headers_and_ignore_fields_follow_the_key() -> None:
    old = post(chat(user="a"), (*JSON, ("x-tenant", "one")))
    new = post(chat(user="b"), (*JSON, ("x-tenant", "two")))
    assert diff_requests(old, new) == ['user: "a" -> "b"']
    assert diff_requests(old, new, ignore_fields=["user"], match_headers=["x-tenant"]) == [
        'headers.x-tenant: "one" -> "two"'
    ]


def test_method_and_url_differences() -> None:
    old = Request("GET", URL + "?limit=10", (), b"")
    new = Request("POST", URL + "?limit=20", (), b"")
    assert diff_requests(old, new) == [
        "method: GET -> POST",
        'url: "https://api.openai.com/v1/chat/completions?limit=10" -> '
        '"https://api.openai.com/v1/chat/completions?limit=20"',
    ]


def test_a_key_in_the_query_is_no_difference_of_the_url() -> None:
    old = Request("GET", URL + "?key=first-secret-value&v=1", (), b"")
    new = Request("GET", URL + "?key=other-secret-value&v=2", (), b"")
    assert diff_requests(old, new) == [
        'url: "https://api.openai.com/v1/chat/completions?v=1" -> '
        '"https://api.openai.com/v1/chat/completions?v=2"',
    ]


def cassette_of(*entries: Entry) -> Cassette:
    return Cassette(Path("c.yaml"), list(entries))


def test_nearest_prefers_the_same_url_then_the_fewest_differences() -> None:
    other_url = chat_entry("Hello", url="https://api.openai.com/v1/responses")
    far = chat_entry("Something else entirely")
    close = chat_entry("Hello!")
    nearest = find_nearest(post(chat("Hello")), cassette_of(other_url, far, close))
    assert nearest is not None
    assert nearest.number == 3
    assert nearest.differences == ['messages[0].content: "Hello!" -> "Hello"']


def test_nearest_falls_back_to_the_same_model() -> None:
    recorded = chat_entry("Hello", url="https://proxy.example/v1/chat/completions")
    nearest = find_nearest(post(chat("Hello")), cassette_of(recorded))
    assert nearest is not None
    assert nearest.differences == [
        'url: "https://proxy.example/v1/chat/completions" -> '
        '"https://api.openai.com/v1/chat/completions"'
    ]


def test_nothing_near_means_no_block() -> None:
    unrelated = chat_entry("Hello", url="https://example.com/other")
    assert nearest_message(post({"model": "claude"}), cassette_of(unrelated)) == ""
    assert nearest_message(post(chat()), cassette_of()) == ""


def test_the_block_stops_after_twelve_lines() -> None:
    old = {f"field{i:02}": i for i in range(20)}
    new = {f"field{i:02}": i + 1 for i in range(20)}
    recorded = chat_entry()
    recorded.request["body"] = {"json": {"model": "m", **old}}
    block = nearest_message(post({"model": "m", **new}), cassette_of(recorded))
    lines = block.splitlines()
    assert lines[0].startswith(f"  nearest recorded request: POST {URL} (entry 1, recorded ")
    assert lines[1] == "  differs in:"
    assert lines[2] == "    field00: 0 -> 1"
    assert len(lines) == 2 + 12 + 1
    assert lines[-1] == "    ... 8 more"


def test_a_replay_miss_shows_what_differs(suite: Suite) -> None:
    path = suite.path / "cassettes" / "test_miss_diff" / "test_prompt.yaml"
    write_cassette(path, chat_entry("Hello"))
    suite.write(
        "test_miss_diff.py",
        f"""
        import httpx, pytest

        @pytest.mark.llm_cache
        def test_prompt():
            body = {{"model": "gpt-4o", "messages": [{{"role": "user", "content": "Hi"}}]}}
            httpx.post("{URL}", json=body, headers={{"openai-beta": "assistants=v2"}})
        """,
    )
    result = suite.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no recorded response for POST https://api.openai.com/v1/chat/completions",
            "  cassette: cassettes/test_miss_diff/test_prompt.yaml (1 entr*)",
            f"  nearest recorded request: POST {URL} (entry 1, recorded *)",
            "  differs in:",
            '    headers.accept added: "*/*"',
            '    headers.openai-beta added: "assistants=v2"',
            '    messages[0].content: "Hello" -> "Hi"',
            "  mode:     replay (nothing was sent to the network)",
        ]
    )
    block = result.stdout.str().split("  differs in:\n", 1)[1].split("  mode:", 1)[0]
    assert len(block.splitlines()) == 3, "exactly the three differences"
    assert suite.upstream() == 0


def test_a_hand_broken_recorded_body_still_gives_a_message() -> None:
    recorded = chat_entry()
    recorded.request["body"] = {"json": {"model": "gpt-4o"}, "style": "no-such-style"}
    recorded.request["headers"] = ["not", "a", "mapping"]
    block = nearest_message(post(chat()), cassette_of(recorded))
    assert "  differs in:\n" in block
    assert 'body: empty -> {"messages": ' in block


FAKE_KEY = "sk-proj-" + "Q9w8E7r6T5y4U3i2O1p0" * 2


def test_the_block_shows_no_credential_and_no_key_shape() -> None:
    recorded = chat_entry("Hello", url="https://proxy.example/v1/chat/completions?key=old-1")
    # A hand-edited (or old) cassette may still hold a credential in its URL.
    recorded.request["url"] = "https://bob:old-password-1@proxy.example/v1?key=old-query-key-1"
    live = post(
        chat(f"my key is live-api-key-123 and {FAKE_KEY}", api_key="live-api-key-123"),
        headers=(*JSON, ("x-custom-token", "live-header-token-1")),
        url="https://eve:live-password-1@api.openai.com/v1/chat/completions?key=live-query-key",
    )
    block = nearest_message(live, cassette_of(recorded), match_headers=("x-custom-token",))
    assert "differs in:" in block
    assert "messages[0].content" in block
    assert "url:" in block
    for secret in (
        "old-password-1",
        "old-query-key-1",
        "live-password-1",
        "live-query-key",
        "live-api-key-123",
        "live-header-token-1",
        FAKE_KEY,
        "bob",
        "eve",
    ):
        assert secret not in block, secret
    # Its presence is part of the key, its value is not.
    assert 'api_key: added "<redacted>"' in block
    assert "x-custom-token" not in block
    assert "sk-pro..." in block
