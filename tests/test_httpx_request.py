"""The request the cache sees from an httpx or httpx2 client: headers as the client holds
them (names lower-cased, in order, repeats kept, non-ASCII values decoded as httpx does)."""

from __future__ import annotations

from types import ModuleType

import httpx
import httpx2
import pytest

from pytest_llmcache._adapters._httpx import _request


@pytest.mark.parametrize("lib", [httpx, httpx2], ids=["httpx", "httpx2"])
@pytest.mark.parametrize(
    "extra",
    [
        [],
        [("X-Note", "café".encode())],
        [("X-Raw", b"\xe9\xff")],
        # One header that is not UTF-8 makes every header Latin-1, the UTF-8 one too.
        [("X-Note", "café".encode()), ("X-Raw", b"\xe9\xff")],
        # bytes.lower() leaves a non-ASCII capital (É) as it is, as httpx does.
        [(b"X-R\xc9f", b"1")],
        [("X-CAFÉ".encode(), b"1")],
    ],
    ids=["ascii", "utf-8", "latin-1", "utf-8-and-latin-1", "latin-1-name", "utf-8-name"],
)
def test_headers_are_what_the_client_holds(
    lib: ModuleType, extra: list[tuple[str | bytes, bytes]]
) -> None:
    headers = [("X-Twice", "1"), ("x-twice", "2"), ("Content-Type", "application/json"), *extra]
    request = lib.Request("POST", "http://h.example/v1/x?b=2", headers=headers, content=b"{}")
    seen = _request(request)
    assert seen.headers == tuple(request.headers.multi_items())
    own = [h for h in seen.headers if h[0] not in ("host", "content-length")]
    assert own[:3] == [("x-twice", "1"), ("x-twice", "2"), ("content-type", "application/json")]
    assert (seen.method, seen.url, seen.body) == ("POST", "http://h.example/v1/x?b=2", b"{}")
