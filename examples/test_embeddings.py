"""Embeddings through the openai SDK, on its default base64 path."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.llm_cache

MODEL = "text-embedding-3-small"


def test_embeddings(client: openai.OpenAI) -> None:
    """Base64 embeddings decode to the same floats as ``encoding_format="float"``."""
    texts = ["cat", "dog"]
    # The SDK asks for base64 (float32 bytes) by default and decodes them into floats.
    vectors = client.embeddings.create(model=MODEL, input=texts, dimensions=8)
    floats = client.embeddings.create(
        model=MODEL, input=texts, dimensions=8, encoding_format="float"
    )
    assert [item.index for item in vectors.data] == [0, 1]
    for decoded, plain in zip(vectors.data, floats.data, strict=True):
        assert len(decoded.embedding) == 8
        assert decoded.embedding == pytest.approx(plain.embedding, abs=1e-6)
    assert vectors.data[0].embedding != vectors.data[1].embedding
