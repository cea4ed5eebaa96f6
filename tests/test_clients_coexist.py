"""Other HTTP mocking and recording tools active in the same marked test as the cache.

Each scenario mocks (or records) an unrelated service with the other tool while an LLM call
goes through the cache; both must keep working, in the record run and in the replay run.
"""

from __future__ import annotations

import pytest
from conftest import Suite
from scenarios import record_then_replay

pytest.importorskip("openai", reason="the LLM side of these scenarios uses the openai SDK")
pytest.importorskip("responses", reason="coexistence with responses needs responses")
pytest.importorskip("respx", reason="coexistence with respx needs respx")
pytest.importorskip("pytest_httpx", reason="coexistence with pytest-httpx needs pytest-httpx")
pytest.importorskip("pytest_recording", reason="coexistence with pytest-recording needs it")

SOURCE = """
import pathlib
import urllib.request

import httpx
import openai
import requests
import responses
import respx
import vcr.patch  # vcrpy keeps its copies of the transports before the cache is installed

WEATHER = "https://weather.example/today"


def ask(text):
    client = openai.OpenAI(api_key=API_KEY, base_url=URL + "/v1")
    messages = [{"role": "user", "content": text}]
    reply = client.chat.completions.with_raw_response.create(model="gpt-fake", messages=messages)
    return [reply.parse().choices[0].message.content, reply.headers["x-llm-cache-status"]]


@responses.activate
def test_responses():
    responses.add(responses.GET, WEATHER, json={"sky": "blue"})
    weather = requests.get(WEATHER).json()
    save("responses", [weather, ask("with responses"), len(responses.calls)])


def test_requests_after_responses():
    # responses has put requests back as it found it: the cache sees requests calls again.
    body = {"model": "gpt-fake", "messages": [{"role": "user", "content": "after"}]}
    reply = requests.post(URL + "/v1/chat/completions", json=body)
    save("requests_after", [reply.json()["choices"][0]["message"]["content"],
                            reply.headers["x-llm-cache-status"]])


def test_respx():
    # using="httpx" puts respx above the transports, so the cache never sees what it mocks.
    # The pass-through route serves openai 2 (on httpx); openai 3 is on httpx2, out of reach.
    with respx.mock(using="httpx", assert_all_called=False) as router:
        route = router.get(WEATHER).respond(json={"sky": "grey"})
        router.route(host="127.0.0.1").pass_through()
        weather = httpx.get(WEATHER).json()
        save("respx", [weather, ask("with respx"), route.call_count])


@pytest.mark.httpx_mock(should_mock=lambda request: request.url.host != "127.0.0.1")
def test_pytest_httpx(httpx_mock):
    httpx_mock.add_response(url=WEATHER, json={"sky": "white"})
    weather = httpx.get(WEATHER).json()
    save("pytest_httpx", [weather, ask("with pytest-httpx")])


@pytest.fixture
def vcr_cassette_dir(request):
    return str(pathlib.Path(str(request.node.fspath)).parent / "vcr_cassettes")


@pytest.fixture
def vcr_config():
    # vcrpy records every client it knows; leave the LLM host to the cache.
    return {"ignore_hosts": ["127.0.0.1"]}


@pytest.mark.vcr
def test_pytest_recording():
    # The unrelated service (the same server, named differently) is vcrpy's to record.
    with urllib.request.urlopen(URL.replace("127.0.0.1", "localhost") + "/v1/models") as answer:
        models = json.loads(answer.read())
    save("pytest_recording", [models["data"][0]["id"], ask("with pytest-recording")])
"""

PLUGINS = ("pytest_httpx", "pytest_recording.plugin")


def test_other_tools_keep_working(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = record_then_replay(
        suite, monkeypatch, SOURCE, tests=5, plugins=PLUGINS, args=("--record-mode=once",)
    )
    recorded, replayed = outcome.recorded, outcome.replayed
    for name, weather in (("responses", "blue"), ("respx", "grey"), ("pytest_httpx", "white")):
        assert recorded[name][0] == replayed[name][0] == {"sky": weather}, name
        assert recorded[name][1][1] == "MISS", name
        assert replayed[name][1][1] == "HIT", name
    assert replayed["responses"][2] == 1  # responses answered the mocked call
    assert replayed["respx"][2] == 1  # and so did respx
    assert [recorded["requests_after"][1], replayed["requests_after"][1]] == ["MISS", "HIT"]
    assert replayed["pytest_recording"][0] == recorded["pytest_recording"][0] == "gpt-fake"
    assert replayed["pytest_recording"][1] == ["Echo: with pytest-recording", "HIT"]
    # Each tool kept its own files: vcrpy's beside the cache's, neither touching the other.
    vcr_cassette = (suite.path / "vcr_cassettes" / "test_pytest_recording.yaml").read_text()
    assert "/v1/models" in vcr_cassette
    assert "chat/completions" not in vcr_cassette
    assert "weather.example" not in "".join(outcome.cassettes.values())
