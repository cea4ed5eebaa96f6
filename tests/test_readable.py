"""A cassette reads well in a pull request: prompt, answer and each stream event verbatim."""

from __future__ import annotations

import json
import re

import pytest
from conftest import Suite

pytest.importorskip("openai")

TESTS = """
import json, os, pathlib
import openai, pytest

OUT = pathlib.Path(os.environ["SEEN"])
MORE = os.environ["MORE"]

def client():
    return openai.OpenAI(api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1")

@pytest.mark.llm_cache
def test_review():
    chat = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Name three colours of the rainbow" + MORE}],
    )
    stream = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Count slowly to five" + MORE}],
        stream=True,
    )
    deltas = [c.choices[0].delta.content or "" for c in stream if c.choices]
    embedding = client().embeddings.create(
        model="text-embedding-3-small", input="a sentence worth embedding" + MORE
    )
    OUT.write_text(json.dumps({
        "answer": chat.choices[0].message.content,
        "deltas": deltas,
        "dimensions": len(embedding.data[0].embedding),
    }))
"""


# Characters past U+FFFF (an emoji) too: libyaml's emitter alone would escape them.
@pytest.mark.parametrize("more", ["", " \U0001f308 \U0001f422"], ids=["ascii", "emoji"])
def test_the_prompt_the_answer_and_every_stream_event_are_verbatim_in_the_file(
    suite: Suite, monkeypatch: pytest.MonkeyPatch, more: str
) -> None:
    seen = suite.path / "seen.json"
    monkeypatch.setenv("SEEN", str(seen))
    monkeypatch.setenv("MORE", more)
    suite.write("test_review.py", TESTS)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    recorded = json.loads(seen.read_text())
    (text,) = suite.cassettes().values()

    assert text.startswith("version: 2\n")
    for prompt in (
        "Name three colours of the rainbow" + more,
        "Count slowly to five" + more,
        "a sentence worth embedding" + more,
    ):
        assert f'"{prompt}"' in text, prompt
    assert f'"content": "{recorded["answer"]}"' in text
    # Each stream event is one line of the file, as it was on the wire.
    events = re.findall(r"^    (data: .*)$", text, re.M)
    assert events[-1] == "data: [DONE]"
    deltas = [json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1]]
    assert [d for d in deltas if d] == [d for d in recorded["deltas"] if d]
    assert '\\"' not in text.split("response_sse:")[0], "no escaped JSON blob in a request"

    seen.unlink()
    before = suite.upstream()
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == before
    assert json.loads(seen.read_text()) == recorded
