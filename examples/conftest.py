"""Fixtures for the examples: openai clients, sync and async, and a server to record against.

Replay (the default) needs no key, no network and no server. A run that calls the provider
(``--llm-cache=record``, ``auto`` or ``off``) calls ``OPENAI_BASE_URL`` or, when that is
unset, the bundled local server, started here for the session on 127.0.0.1:8765.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from .local_server import DEFAULT_PORT, serve

LOCAL_URL = f"http://127.0.0.1:{DEFAULT_PORT}/v1"


def _calls_provider(config: pytest.Config) -> bool:
    """Whether this run may call the provider (same precedence as the plugin's mode)."""
    mode = (
        config.getoption("llm_cache_mode")
        or os.environ.get("LLM_CACHE_MODE")
        or config.getini("llm_cache_mode")
        or "replay"
    )
    return str(mode).strip().lower() in ("record", "auto", "off")


@pytest.fixture(scope="session")
def openai_base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The API the clients call; the local server starts only for runs that call it."""
    configured = os.environ.get("OPENAI_BASE_URL")
    if configured or not _calls_provider(request.config):
        # Cassettes key on the URL: replay with the base URL the cassettes were recorded with.
        yield configured or LOCAL_URL
        return
    try:
        server = serve(DEFAULT_PORT)
    except OSError:  # the port is taken: `python examples/local_server.py` already runs
        yield LOCAL_URL
        return
    with server:
        yield server.url


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio."""
    return "asyncio"


@pytest.fixture
def client(openai_base_url: str) -> Iterator[openai.OpenAI]:
    """An OpenAI client; no retries, so a failing call fails the test at once."""
    api_key = os.environ.get("OPENAI_API_KEY", "sk-local")
    with openai.OpenAI(api_key=api_key, base_url=openai_base_url, max_retries=0) as sync:
        yield sync


@pytest.fixture
async def async_client(openai_base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    """The async twin of ``client``, for tests marked ``@pytest.mark.anyio``."""
    api_key = os.environ.get("OPENAI_API_KEY", "sk-local")
    async with openai.AsyncOpenAI(
        api_key=api_key, base_url=openai_base_url, max_retries=0
    ) as asynchronous:
        yield asynchronous
