"""langchain-openai: ChatOpenAI invoke, stream and astream; OpenAIEmbeddings."""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("langchain_openai", reason="the langchain scenarios need langchain-openai")

SOURCE = """
from langchain_openai import ChatOpenAI, OpenAIEmbeddings


def chat():
    return ChatOpenAI(model="gpt-fake", base_url=URL + "/v1", api_key=API_KEY)


def test_invoke():
    message = chat().invoke("hello from langchain")
    save("invoke", [message.content, message.usage_metadata])


def test_stream():
    save("stream", [chunk.content for chunk in chat().stream("stream from langchain")])


def test_astream():
    async def run():
        return [chunk.content async for chunk in chat().astream("astream from langchain")]

    save("astream", asyncio.run(run()))


def test_embeddings():
    # Token-length checks would download a tokenizer; the request is the same without them.
    embeddings = OpenAIEmbeddings(
        model="text-embedding-fake",
        base_url=URL + "/v1",
        api_key=API_KEY,
        check_embedding_ctx_length=False,
    )
    save("embeddings", [embeddings.embed_documents(["a", "b"]), embeddings.embed_query("q")])
"""


def test_langchain_record_then_replay(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(suite, monkeypatch, SOURCE, tests=4)
    outcome.same()
    replayed = outcome.replayed
    assert replayed["invoke"][0] == "Echo: hello from langchain"
    assert "".join(replayed["stream"]) == "Echo: stream from langchain"
    assert len(replayed["stream"]) >= 3
    assert "".join(replayed["astream"]) == "Echo: astream from langchain"
    documents, query = replayed["embeddings"]
    assert len(documents) == 2
    assert len(query) == 4
