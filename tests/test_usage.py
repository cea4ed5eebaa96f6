"""Tokens read from stored responses, per provider shape, and the user's price table."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmcache import _body
from pytest_llmcache._exchange import Response
from pytest_llmcache._settings import OptionError, parse_prices
from pytest_llmcache._usage import Usage, entry_usage, price_of, replay_usage

REQUEST: dict[str, Any] = {"body": {"json": {"model": "from-request"}}}


def json_response(body: object) -> dict[str, Any]:
    return {"status": 200, "body": {"json": body}}


def sse_response(*events: object) -> dict[str, Any]:
    return {"status": 200, "body": {"chunks": [{"sse": [{"data": e}]} for e in events]}}


CASES: list[tuple[str, dict[str, Any], Usage]] = [
    (
        "openai chat",
        json_response({"model": "gpt-x", "usage": {"prompt_tokens": 11, "completion_tokens": 7}}),
        Usage("gpt-x", 11, 7),
    ),
    (
        "openai embeddings",
        json_response({"model": "emb", "usage": {"prompt_tokens": 5, "total_tokens": 5}}),
        Usage("emb", 5, 0),
    ),
    (
        "openai responses",
        json_response({"model": "gpt-r", "usage": {"input_tokens": 9, "output_tokens": 4}}),
        Usage("gpt-r", 9, 4),
    ),
    (
        "anthropic message",
        json_response({"model": "claude", "usage": {"input_tokens": 3, "output_tokens": 8}}),
        Usage("claude", 3, 8),
    ),
    (
        "openai stream with a usage chunk",
        sse_response(
            {"model": "gpt-s", "choices": [{"delta": {"content": "a"}}]},
            {
                "model": "gpt-s",
                "choices": [],
                "usage": {"prompt_tokens": 4, "completion_tokens": 2},
            },
            "[DONE]",
        ),
        Usage("gpt-s", 4, 2),
    ),
    (
        "anthropic stream",
        sse_response(
            {
                "type": "message_start",
                "message": {"model": "claude-s", "usage": {"input_tokens": 6, "output_tokens": 1}},
            },
            {"type": "content_block_delta", "delta": {"text": "hi"}},
            {"type": "message_delta", "usage": {"output_tokens": 12}},
        ),
        Usage("claude-s", 6, 12),
    ),
    (
        "responses stream",
        sse_response(
            {"type": "response.created", "response": {"model": "gpt-rs"}},
            {
                "type": "response.completed",
                "response": {"model": "gpt-rs", "usage": {"input_tokens": 2, "output_tokens": 3}},
            },
        ),
        Usage("gpt-rs", 2, 3),
    ),
    (
        "gemini",
        json_response({"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 5}}),
        Usage("from-request", 7, 5),
    ),
    (
        "cohere v2",
        json_response({"usage": {"tokens": {"input_tokens": 10, "output_tokens": 20}}}),
        Usage("from-request", 10, 20),
    ),
    (
        "openai stream asked for usage: null in every event but the last",
        sse_response(
            {"model": "gpt-n", "choices": [{"delta": {"content": "a"}}], "usage": None},
            {"model": "gpt-n", "choices": [{"delta": {"content": "b"}}], "usage": None},
            {
                "model": "gpt-n",
                "choices": [],
                "usage": {"prompt_tokens": 8, "completion_tokens": 3},
            },
            "[DONE]",
        ),
        Usage("gpt-n", 8, 3),
    ),
    ("no usage", json_response({"id": "x"}), Usage("from-request", 0, 0)),
    ("text body", {"status": 200, "body": {"text": "plain"}}, Usage("from-request", 0, 0)),
]


@pytest.mark.parametrize(
    ("response", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_usage_is_read_from_each_provider_shape(response: dict[str, Any], expected: Usage) -> None:
    assert entry_usage(REQUEST, response) == expected


@pytest.mark.parametrize(
    ("response", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("spacing", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_the_replayed_bytes_give_the_stored_usage(
    response: dict[str, Any], expected: Usage, spacing: tuple[str, str]
) -> None:
    body = response["body"]
    if "chunks" in body:
        # Each event as a provider writes it, compact or with spaces.
        chunks = tuple(
            "".join(
                f"data: {json.dumps(e['data'], separators=spacing)}\n\n" for e in chunk["sse"]
            ).encode()
            for chunk in body["chunks"]
        )
    elif "json" in body:
        chunks = (json.dumps(body["json"], separators=spacing).encode(),)
    else:
        chunks = (_body.decode_body(body),)
    assert replay_usage(REQUEST, Response(200, (), chunks)) == expected
    if "json" in body:  # the body as the cassette gave it, already parsed
        assert replay_usage(REQUEST, Response(200, (), (b"",), document=body["json"])) == expected


def test_prices_apply_by_longest_model_prefix() -> None:
    prices = parse_prices(["gpt-4o 2.5 10", "gpt-4o-mini 0.15 0.60", "# a comment", ""])
    assert price_of(Usage("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000), prices) == (
        pytest.approx(0.75)
    )
    assert price_of(Usage("gpt-4o-2024-08-06", 2_000_000, 0), prices) == pytest.approx(5.0)
    assert price_of(Usage("claude", 1, 1), prices) is None


@pytest.mark.parametrize("line", ["gpt-4o 2.5", "gpt-4o cheap 10", "a b c d"])
def test_a_bad_price_line_names_the_option(line: str) -> None:
    with pytest.raises(OptionError, match=r"llm_cache_prices: .* is not '<model>"):
        parse_prices([line])


PLAIN = {"id": "x", "model": "gpt-p", "usage": {"prompt_tokens": 4, "completion_tokens": 6}}

DOCUMENTS = [
    PLAIN,
    {"model": "claude-p", "usage": {"input_tokens": 3, "output_tokens": 8}},
    {"model": "m", "usage": {"prompt_tokens": None, "input_tokens": 2, "completion_tokens": 1}},
    {"model": "m", "usage": {"prompt_tokens": "4", "input_tokens": 2, "completion_tokens": 1}},
    {"model": "m", "usage": {"prompt_tokens": True, "completion_tokens": 1}},
    {"model": "m", "usage": {"prompt_tokens": 2.0, "completion_tokens": 1}},
    {"model": "m", "usage": {"prompt_tokens": -4, "completion_tokens": -1}},
    {"model": "m", "usage": {"promptTokenCount": 5, "completion_tokens": 1}},
    {"model": "m", "usage": {"prompt_tokens": 5}},
    {"model": "m", "usage": {}},
    {"model": "m", "usage": {"tokens": {"input_tokens": 9, "output_tokens": 7}}},
    {"model": "m", "usage": {"tokens": 3, "prompt_tokens": 1, "completion_tokens": 1}},
    {
        "model": "m",
        "usage": {"tokens": {"input_tokens": 9}, "prompt_tokens": 1, "completion_tokens": 1},
    },
    {"model": "m", "usage": None},
    {"model": "m", "usage": [1, 2]},
    {"model": 4, "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    {"usage": {"prompt_tokens": 1, "completion_tokens": 1}},
    {"model": "m"},
    {**PLAIN, "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 60}},
    {**PLAIN, "message": {"model": "inner", "usage": {"input_tokens": 70}}},
    {**PLAIN, "response": {"usage": {"input_tokens": 80, "output_tokens": 90}}},
    {**PLAIN, "from": "server", "text": json.dumps({"model": "ws", "usage": {}})},
    {**PLAIN, "from": "client"},
    {**PLAIN, "bytes": "eyJtb2RlbCI6ICJiNjQifQ=="},
    {**PLAIN, "bytes": 5},
    [PLAIN],
    "text",
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: json.dumps(d)[:50])
def test_a_parsed_document_gives_the_usage_its_bytes_give(document: object) -> None:
    expected = replay_usage(REQUEST, Response(200, (), (json.dumps(document).encode(),)))
    assert replay_usage(REQUEST, Response(200, (), (b"",), document=document)) == expected


def test_a_plain_answer_gives_its_model_and_tokens() -> None:
    usage = replay_usage(REQUEST, Response(200, (), (b"",), document=PLAIN))
    assert usage == Usage("gpt-p", 4, 6)
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("gpt-p", 4, 6)
    assert Usage("m") == Usage("m", 0, 0)


_EVENTS = st.sampled_from(
    [
        {"model": "gpt-s", "choices": [{"delta": {"content": "a"}}]},
        {"model": "gpt-s", "choices": [], "usage": None},
        {"model": "gpt-s", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
        {"choices": [{"delta": {"content": 'say "model" and "usage"'}}]},
        {"type": "message_start", "message": {"model": "claude-s", "usage": {"input_tokens": 6}}},
        {"type": "message_delta", "usage": {"output_tokens": 12}},
        {"type": "response.completed", "response": {"model": "r", "usage": {"input_tokens": 2}}},
        {"usage": {"prompt_tokens": 9}, "model": "late"},
        "[DONE]",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_EVENTS, max_size=8),
    st.lists(st.integers(1, 3), max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from([(",", ":"), (", ", ": ")]),
)
def test_a_replayed_stream_gives_the_usage_of_its_events(
    events: list[object], sizes: list[int], eol: str, spacing: tuple[str, str]
) -> None:
    lines = [
        f"data: {e if isinstance(e, str) else json.dumps(e, separators=spacing)}{eol}{eol}"
        for e in events
    ]
    chunks: list[bytes] = []
    for size in [*sizes, len(lines)]:  # whole events, a few to a chunk
        if lines:
            chunks.append("".join(lines[:size]).encode())
            del lines[:size]
    expected = entry_usage(REQUEST, sse_response(*events))
    assert replay_usage(REQUEST, Response(200, (), tuple(chunks))) == expected
