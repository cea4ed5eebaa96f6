"""``llm-cache show`` gives each stream event what it adds: text, a tool-call fragment, or an
AWS event's payload."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pytest_llmcache._capture import make_entry
from pytest_llmcache._exchange import Request
from pytest_llmcache._show import render_entry

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _stream(*events: object) -> str:
    chunks = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
    entry = make_entry(
        key="0a",
        request=Request("POST", "https://api.x/v1/chat/completions", (), b"{}"),
        status=200,
        headers=(("content-type", "text/event-stream"),),
        chunks=chunks,
        match_headers=(),
        ttl=None,
        duration=0.1,
        now=NOW,
        secrets=(),
    )
    return render_entry(entry, "c.yaml", NOW)


@pytest.mark.parametrize(
    ("event", "shown"),
    [
        ({"choices": [{"delta": {"content": "Hel"}}]}, 'message  text "Hel"'),
        (
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"name": "get_weather", "arguments": ""}}
                            ]
                        }
                    }
                ]
            },
            "message  tool call [0] get_weather",
        ),
        (
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city'}}]}}
                ]
            },
            'message  tool call [0] "{\\"city"',
        ),
        (
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
            'content_block_delta text "Hi"',
        ),
        (
            {
                "type": "content_block_delta",
                "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
            },
            'content_block_delta tool input "{\\"a\\""',
        ),
        (
            {"type": "response.output_text.delta", "delta": "lo"},
            'response.output_text.delta text "lo"',
        ),
    ],
    ids=[
        "openai-text",
        "openai-tool-name",
        "openai-tool-args",
        "anthropic-text",
        "anthropic-tool",
        "responses",
    ],
)
def test_each_stream_event_shows_what_it_adds(event: object, shown: str) -> None:
    assert f"    1. {shown}\n" in _stream(event) + "\n"
