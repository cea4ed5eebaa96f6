"""AWS Bedrock: boto3's Converse and InvokeModel, streamed and not, AnthropicBedrock and
langchain-aws, against a fake Bedrock runtime on loopback, with SigV4-signed requests.

The streamed answers come as AWS event-stream frames: they are stored message by message,
readable, and replayed frame by frame for botocore's own parser.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import Suite
from fake_bedrock import FakeBedrock, start_fake_bedrock
from scenarios import Outcome, record_then_replay

from pytest_llmcache._capture import make_entry
from pytest_llmcache._cli import main
from pytest_llmcache._exchange import Request
from pytest_llmcache._format_v2 import render
from pytest_llmcache._key import request_key

boto3 = pytest.importorskip("boto3", reason="the Bedrock scenarios need boto3 (pip install boto3)")

SECRET_KEY = "fake-secret-access-key-for-tests-0123"
SESSION_TOKEN = "fake-session-token-for-tests-4567"
SIGV4 = (
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
)
FORBIDDEN = (*SIGV4, SECRET_KEY, SESSION_TOKEN, "AWS4-HMAC-SHA256", "Signature=", "Credential=")

SOURCE = """
import json

import boto3
from botocore.config import Config

BEDROCK = os.environ["BEDROCK_URL"]
MODEL = "fake.model-v1:0"
CLAUDE = "anthropic.claude-fake-v1:0"
CONVERSE = [{"role": "user", "content": [{"text": "tell me a story about seven small cats"}]}]
INVOKE = json.dumps(
    {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": MESSAGES}
)


def client():
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=BEDROCK,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 2}),
    )


def test_converse():
    answer = client().converse(modelId=MODEL, messages=CONVERSE)
    save("converse", [answer["output"], answer["usage"], answer["stopReason"]])
    save("status", answer["ResponseMetadata"]["HTTPHeaders"]["x-llm-cache-status"])


def test_converse_stream():
    answer = client().converse_stream(modelId=MODEL, messages=CONVERSE)
    save("converse_stream", list(answer["stream"]))


def test_invoke_model():
    answer = client().invoke_model(modelId=CLAUDE, body=INVOKE)
    save("invoke_model", json.loads(answer["body"].read()))


def test_invoke_model_with_response_stream():
    answer = client().invoke_model_with_response_stream(modelId=CLAUDE, body=INVOKE)
    save("invoke_stream", [json.loads(event["chunk"]["bytes"]) for event in answer["body"]])
"""

ANTHROPIC_SOURCE = """

def anthropic_client():
    anthropic = pytest.importorskip("anthropic")
    return anthropic.AnthropicBedrock(
        aws_access_key=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=os.environ["AWS_SESSION_TOKEN"],
        aws_region="us-east-1",
        base_url=BEDROCK,
        max_retries=1,
    )


def test_anthropic_bedrock():
    message = anthropic_client().messages.create(model=CLAUDE, max_tokens=50, messages=MESSAGES)
    save("anthropic_bedrock", message.model_dump())


def test_anthropic_bedrock_stream():
    with anthropic_client().messages.stream(
        model=CLAUDE, max_tokens=50, messages=MESSAGES
    ) as stream:
        events = [event.model_dump() for event in stream]
    save("anthropic_bedrock_stream", events)


def test_anthropic_bedrock_async_stream():
    anthropic = pytest.importorskip("anthropic")

    async def run():
        client = anthropic.AsyncAnthropicBedrock(
            aws_access_key=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=os.environ["AWS_SESSION_TOKEN"],
            aws_region="us-east-1",
            base_url=BEDROCK,
            max_retries=1,
        )
        async with client.messages.stream(
            model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "async"}]
        ) as stream:
            return [text async for text in stream.text_stream]

    save("anthropic_bedrock_async_stream", asyncio.run(run()))
"""

LANGCHAIN_SOURCE = """

def test_langchain_bedrock_converse():
    from langchain_aws import ChatBedrockConverse

    chat = ChatBedrockConverse(
        model=MODEL, endpoint_url=BEDROCK, region_name="us-east-1", disable_streaming=False
    )
    reply = chat.invoke("tell me a story about seven small cats")
    parts = [chunk.content for chunk in chat.stream("tell me a story about seven small cats")]
    save("langchain", [reply.content, reply.usage_metadata, parts])
"""


class BedrockSuite(Suite):
    """A user's suite whose tests call the fake Bedrock runtime."""

    def __init__(self, suite: Suite, bedrock: FakeBedrock) -> None:
        super().__init__(suite.pytester, suite.provider)
        self.bedrock = bedrock

    def upstream(self) -> int:
        """Requests the fake Bedrock runtime served so far."""
        return self.bedrock.count()


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    """One fake Bedrock runtime for the module."""
    with start_fake_bedrock() as fake:
        yield fake


@pytest.fixture
def bedrock_suite(
    suite: Suite, bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch
) -> BedrockSuite:
    """A user's suite reaching the fake runtime, with fake AWS credentials in the environment."""
    bedrock.reset()
    monkeypatch.setenv("BEDROCK_URL", bedrock.url)
    # Not key-shaped on purpose: an id shaped like AKIA... is refused by the recorder.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _isolate_aws(monkeypatch, suite.path)
    return BedrockSuite(suite, bedrock)


def _isolate_aws(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """No AWS settings of this machine (profiles, endpoints, instance metadata) apply."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    empty = folder / "aws-config-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))


def _record_then_replay(
    suite: BedrockSuite, monkeypatch: pytest.MonkeyPatch, source: str, tests: int
) -> Outcome:
    outcome = record_then_replay(suite, monkeypatch, source, tests=tests)
    # Same answers and the same events, in the same number, as recorded.
    outcome.same(*(name for name in outcome.recorded if name != "status"))
    # The requests were signed, and none of the signature reached a file.
    signed = [r for r in suite.bedrock.requests if "authorization" in r.headers]
    assert signed, "the fake runtime saw SigV4-signed requests"
    assert all(r.headers["x-amz-security-token"] == SESSION_TOKEN for r in signed)
    everything = "\n".join(outcome.cassettes.values())
    for forbidden in FORBIDDEN:
        assert forbidden.lower() not in everything.lower(), forbidden
    # The checker for committed cassettes passes what was recorded.
    assert main(["check", str(suite.path / "cassettes")]) == 0
    return outcome


def test_boto3_record_then_replay(
    bedrock_suite: BedrockSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _record_then_replay(bedrock_suite, monkeypatch, SOURCE, tests=4)
    recorded, replayed = outcome.recorded, outcome.replayed
    assert [recorded["status"], replayed["status"]] == ["MISS", "HIT"]
    text = "Echo: tell me a story about seven small cats"
    assert replayed["converse"][0]["message"]["content"] == [{"text": text}]

    events = replayed["converse_stream"]
    assert len(events) == 2 + len(text.split()) + 2
    assert [next(iter(e)) for e in (events[0], events[-2], events[-1])] == [
        "messageStart",
        "messageStop",
        "metadata",
    ]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert "".join(deltas) == text
    assert replayed["invoke_model"]["content"][0]["text"] == text
    kinds = [event["type"] for event in replayed["invoke_stream"]]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"

    # Each event's JSON payload reads verbatim in the file, with its headers.
    stream_file = outcome.cassettes["cassettes/test_scenarios/test_converse_stream.yaml"]
    assert "response_events:" in stream_file
    assert stream_file.count("    :event-type: contentBlockDelta\n") == len(text.split())
    assert '"text": " seven"' in stream_file
    assert '"outputTokens": 9' in stream_file
    assert "content-type: application/vnd.amazon.eventstream" in stream_file


def test_boto3_replay_counts_bedrock_tokens(
    bedrock_suite: BedrockSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_then_replay(bedrock_suite, monkeypatch, SOURCE, tests=4)
    result = bedrock_suite.run("-q")
    # Converse 11 in, 9 out; its stream the same (from the metadata event); InvokeModel 13 in,
    # 9 out, and its stream the same (inside the base64 of its chunks).
    result.stdout.fnmatch_lines(["*saved: 84 tokens (48 in, 36 out)*"])


@pytest.mark.skipif(
    importlib.util.find_spec("anthropic") is None, reason="AnthropicBedrock needs anthropic"
)
def test_anthropic_bedrock_record_then_replay(
    bedrock_suite: BedrockSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _record_then_replay(bedrock_suite, monkeypatch, SOURCE + ANTHROPIC_SOURCE, tests=7)
    text = "Echo: tell me a story about seven small cats"
    assert outcome.replayed["anthropic_bedrock"]["content"][0]["text"] == text
    events = outcome.replayed["anthropic_bedrock_stream"]
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(deltas) == text
    assert "".join(outcome.replayed["anthropic_bedrock_async_stream"]) == "Echo: async"
    assert bedrock_suite.bedrock.count("/invoke-with-response-stream") == 3


@pytest.mark.skipif(
    importlib.util.find_spec("langchain_aws") is None,
    reason="langchain-aws is not installed (pip install langchain-aws)",
)
def test_langchain_bedrock_converse_record_then_replay(
    bedrock_suite: BedrockSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = _record_then_replay(bedrock_suite, monkeypatch, SOURCE + LANGCHAIN_SOURCE, tests=5)
    reply, usage, parts = outcome.replayed["langchain"]
    assert reply == "Echo: tell me a story about seven small cats"
    assert usage["input_tokens"] == 11
    assert len([p for p in parts if p]) >= len(reply.split())
    assert bedrock_suite.bedrock.count("/converse-stream") == 2


class _Sent(Exception):
    """Raised from botocore's ``before-send`` event: the request as it would go out."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.url)
        self.request = request


def _signed(region: str, secret: str, token: str) -> Request:
    """The Converse request botocore signs and sends for ``region``, as the cache sees it."""
    session = boto3.Session(
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )
    client = session.client("bedrock-runtime")

    def stop(request: Any, **_: Any) -> None:
        headers = tuple((k.lower(), str(v)) for k, v in request.headers.items())
        raise _Sent(Request(request.method, request.url, headers, bytes(request.body or b"")))

    client.meta.events.register("before-send", stop)
    with pytest.raises(_Sent) as sent:
        client.converse(modelId="fake.model-v1:0", messages=[{"role": "user", "content": []}])
    return sent.value.request


def test_sigv4_material_stays_out_of_the_key_and_the_entry_the_region_stays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _isolate_aws(monkeypatch, tmp_path)
    first = _signed("us-east-1", SECRET_KEY, SESSION_TOKEN)
    again = _signed("us-east-1", "another-secret", "another-token")
    elsewhere = _signed("eu-west-3", SECRET_KEY, SESSION_TOKEN)
    sent = {name for name, _ in first.headers}
    assert {"authorization", "x-amz-date", "x-amz-security-token"} <= sent
    assert {"amz-sdk-invocation-id", "amz-sdk-request"} <= sent
    assert first.header("authorization") != again.header("authorization")
    assert first.header("amz-sdk-invocation-id") != again.header("amz-sdk-invocation-id")

    assert request_key(first) == request_key(again)
    assert request_key(first) != request_key(elsewhere)

    entry = make_entry(
        key=request_key(first),
        request=first,
        status=200,
        headers=(("content-type", "application/json"),),
        chunks=[b'{"usage":{"inputTokens":1,"outputTokens":2}}'],
        match_headers=(),
        ttl=None,
        duration=0.1,
        now=datetime.now(timezone.utc),
        secrets=(),
    )
    text = render([entry])
    assert "POST https://bedrock-runtime.us-east-1.amazonaws.com/model/" in text
    for forbidden in (*FORBIDDEN, first.header("amz-sdk-invocation-id") or "-"):
        assert forbidden.lower() not in text.lower(), forbidden


@pytest.mark.parametrize("mode", ["replay", "auto"])
def test_a_corrupt_frame_in_a_cassette_is_refused_with_file_and_line(
    bedrock_suite: BedrockSuite,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    _record_then_replay(bedrock_suite, monkeypatch, SOURCE, tests=4)
    path = bedrock_suite.path / "cassettes/test_scenarios/test_converse_stream.yaml"
    text = path.read_text("utf-8")
    # The second message's JSON payload becomes a binary payload that is not base64.
    second = text.index("  - headers: |", text.index("  - headers: |") + 1)
    start = text.index("    json: |\n", second)
    end = text.index("  - headers: |", start)
    broken = text[:start] + "    base64: not*base64\n" + text[end:]
    path.write_text(broken, "utf-8")
    line = broken[:second].count("\n") + 1
    served = bedrock_suite.upstream()

    result = bedrock_suite.run("-q", "-k", "converse_stream", f"--llm-cache={mode}")
    assert result.ret != 0
    problem = f"{path.name}:{line}: entry response_events item 2: event payload base64 is not"
    result.stdout.fnmatch_lines([f"*{problem}*"])
    assert bedrock_suite.upstream() == served
    assert path.read_text("utf-8") == broken

    # The checker for committed cassettes says the same.
    assert main(["check", str(path)]) != 0
    assert problem in capsys.readouterr().out
