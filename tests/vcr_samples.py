"""vcrpy cassettes written by vcrpy's own serializers, as pytest-recording leaves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import vcr.serialize  # type: ignore[import-untyped]
from vcr.request import Request as VcrRequest  # type: ignore[import-untyped]
from vcr.serializers import jsonserializer, yamlserializer  # type: ignore[import-untyped]

URL = "https://api.openai.com/v1/chat/completions"


def vcr_request(
    body: object = None, *, url: str = URL, headers: dict[str, str] | None = None
) -> Any:
    """A vcrpy request for a JSON body, with the headers an HTTP client sends."""
    sent = {"accept": "*/*", "content-type": "application/json", **(headers or {})}
    payload = json.dumps(body if body is not None else {"model": "gpt-4o"}).encode()
    return VcrRequest("POST", url, payload, sent)


def vcr_response(
    body: bytes, *, status: int = 200, headers: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """A response as vcrpy stores it: status, headers as lists, body bytes."""
    return {
        "status": {"code": status, "message": "OK"},
        "headers": headers or {"content-type": ["application/json"]},
        "body": {"string": body},
    }


def write_vcr(path: Path, *interactions: tuple[Any, dict[str, Any]]) -> Path:
    """Write the interactions with vcrpy's YAML (or, for ``.json``, JSON) serializer."""
    serializer = jsonserializer if path.suffix == ".json" else yamlserializer
    cassette = {
        "requests": [request for request, _ in interactions],
        "responses": [response for _, response in interactions],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(vcr.serialize.serialize(cassette, serializer))
    return path
