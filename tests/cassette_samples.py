"""Real cassette files for the ``llm-cache`` command tests, built the way recording builds them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pytest_llmcache import _yaml
from pytest_llmcache._capture import make_entry
from pytest_llmcache._cassette import Cassette, Entry
from pytest_llmcache._exchange import Request
from pytest_llmcache._key import request_key

URL = "https://api.openai.com/v1/chat/completions"
FAKE_OPENAI_KEY = "sk-proj-FAKEFAKEFAKEFAKEFAKEFAKE0123"
"""Shaped like an OpenAI key, and no key: what a hand edit that leaks one looks like."""
NOW = datetime.now(timezone.utc)


def chat_entry(
    content: str = "Hello",
    *,
    days_old: float = 0,
    ttl: float | None = None,
    stream: bool = False,
    url: str = URL,
    reply: object = None,
) -> Entry:
    """A recorded chat completion (JSON, or an SSE stream of three events)."""
    body: dict[str, object] = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": content}],
    }
    if stream:
        body["stream"] = True
    request = Request(
        "POST", url, (("content-type", "application/json"),), json.dumps(body).encode()
    )
    if stream:
        events = [
            {"choices": [{"delta": {"role": "assistant"}}]},
            {"choices": [{"delta": {"content": f"Echo: {content}"}}]},
        ]
        chunks = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
        chunks.append(b"data: [DONE]\n\n")
        headers: tuple[tuple[str, str], ...] = (("content-type", "text/event-stream"),)
    else:
        answer = reply if reply is not None else {"choices": [{"message": {"content": content}}]}
        chunks = [json.dumps(answer).encode()]
        headers = (("content-type", "application/json"),)
    return make_entry(
        key=request_key(request),
        request=request,
        status=200,
        headers=headers,
        chunks=chunks,
        match_headers=(),
        ttl=ttl,
        duration=0.25,
        now=NOW - timedelta(days=days_old),
        secrets=(),
    )


def write_cassette(path: Path, *entries: Entry) -> Path:
    """Save ``entries`` to ``path`` as the plugin does (atomic, canonical YAML)."""
    cassette = Cassette(path, list(entries))
    cassette.dirty = True
    cassette.save()
    return path


def write_v1_cassette(path: Path, *entries: Entry) -> Path:
    """Save ``entries`` to ``path`` in cassette format version 1, as older releases wrote it.

    Version 1 is still read (and only version 1 files use the parse cache), but the plugin no
    longer writes it: tests about version 1 build such files here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_yaml.dump({"version": 1, "entries": [e.to_data() for e in entries]}), "utf-8")
    return path


def llm_cache(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest_llmcache ARGS`` in ``cwd``, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmcache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of ``text`` containing ``needle``."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")
