"""Calls made in session, module and class fixtures go to the fixture's own cassette."""

from __future__ import annotations

import pytest
from conftest import Suite

pytest.importorskip("openai")

CONFTEST = """
import os, openai, pytest, pytest_llmcache

def client():
    return openai.OpenAI(api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1", max_retries=0)

@pytest.fixture(scope="session")
def corpus():
    # The expensive shared set-up: embed a corpus, then summarise it.
    vectors = client().embeddings.create(model="e", input=["one doc", "two docs"])
    summary = client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "summarise the corpus"}]
    )
    return len(vectors.data), summary.choices[0].message.content
"""

TESTS = """
import pytest

pytestmark = pytest.mark.llm_cache

@pytest.mark.parametrize("n", range(4))
def test_uses_corpus(corpus, n):
    assert corpus == (2, "Echo: summarise the corpus")
"""


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["n0", "n2"])
def test_a_session_fixture_is_recorded_once_and_replayed_offline(
    suite: Suite, workers: list[str]
) -> None:
    suite.write("conftest.py", CONFTEST)
    suite.write("test_corpus.py", TESTS)
    suite.run("--llm-cache=record", *workers).assert_outcomes(passed=4)
    files = suite.cassettes()
    assert list(files) == ["cassettes/conftest/fixture.corpus.yaml"]
    text = files["cassettes/conftest/fixture.corpus.yaml"]
    assert text.count("- key: ") == 2, "one embedding call and one chat call, each once"
    assert "test: fixture:" in text
    before = suite.upstream()
    replayed = suite.run(*workers)
    replayed.assert_outcomes(passed=4)
    assert suite.upstream() == before
    replayed.stdout.fnmatch_lines(["mode replay: * replayed, 0 recorded, 0 missed*"])


def test_a_missing_fixture_recording_names_the_fixture_and_a_command(suite: Suite) -> None:
    suite.write("conftest.py", CONFTEST)
    suite.write("test_corpus.py", TESTS)
    result = suite.run()
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            "*no recorded response for POST*/v1/embeddings*",
            "*test:     fixture corpus (conftest.py)*",
            "*record it: pytest --llm-cache=record --setup-only "
            "'test_corpus.py::test_uses_corpus[[]0]'",
        ]
    )
    assert suite.upstream() == 0
    # That command records the fixture's cassette alone: no test body runs.
    suite.run("--llm-cache=record", "--setup-only", "test_corpus.py::test_uses_corpus[0]")
    assert list(suite.cassettes()) == ["cassettes/conftest/fixture.corpus.yaml"]
    suite.run().assert_outcomes(passed=4)


def test_a_parametrized_module_fixture_gets_a_cassette_per_param_and_cached_sets_options(
    suite: Suite,
) -> None:
    suite.write(
        "test_params.py",
        """
        import os, httpx, pytest, pytest_llmcache

        URL = os.environ["FAKE_URL"] + "/v1/chat/completions"

        @pytest.fixture(scope="module", params=["red", "blue"])
        @pytest_llmcache.cached(ttl="7d")
        def colour(request):
            body = {"model": "m", "messages": [{"role": "user", "content": request.param}]}
            yield httpx.post(URL, json=body).json()["choices"][0]["message"]["content"]
            # Teardown calls are cached too.
            httpx.post(URL, json={"model": "m", "messages": [{"role": "user", "content": "bye"}]})

        @pytest_llmcache.cached(cassette="shared_setup")
        @pytest.fixture(scope="class")
        def setup_call():
            body = {"model": "m", "messages": [{"role": "user", "content": "class set-up"}]}
            return httpx.post(URL, json=body).status_code

        @pytest.mark.llm_cache
        def test_colour(colour):
            assert colour.startswith("Echo: ")

        @pytest.mark.llm_cache
        class TestWithSetup:
            def test_one(self, setup_call):
                assert setup_call == 200
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=3)
    files = suite.cassettes()
    assert sorted(files) == [
        "cassettes/test_params/fixture.colour[blue].yaml",
        "cassettes/test_params/fixture.colour[red].yaml",
        "cassettes/test_params/shared_setup.yaml",
    ]
    red = files["cassettes/test_params/fixture.colour[red].yaml"]
    assert '"red"' in red, "the set-up call"
    assert '"bye"' in red, "the teardown call"
    assert "ttl: 604800" in red
    before = suite.upstream()
    suite.run().assert_outcomes(passed=3)
    assert suite.upstream() == before


def test_an_async_session_fixture_under_pytest_asyncio(suite: Suite) -> None:
    pytest.importorskip("pytest_asyncio")
    suite.write("pytest.ini", "[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    suite.write(
        "test_async_fixture.py",
        """
        import os, openai, pytest, pytest_asyncio

        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def answer():
            client = openai.AsyncOpenAI(
                api_key="sk-test", base_url=os.environ["FAKE_URL"] + "/v1", max_retries=0
            )
            reply = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "async set-up"}]
            )
            return reply.choices[0].message.content

        @pytest.mark.llm_cache
        @pytest.mark.asyncio(loop_scope="session")
        async def test_answer(answer):
            assert answer == "Echo: async set-up"
        """,
    )
    suite.run("-p", "asyncio", "--llm-cache=record").assert_outcomes(passed=1)
    assert list(suite.cassettes()) == ["cassettes/test_async_fixture/fixture.answer.yaml"]
    before = suite.upstream()
    suite.run("-p", "asyncio").assert_outcomes(passed=1)
    assert suite.upstream() == before


def test_two_fixtures_sharing_a_cassette_name_is_an_error_naming_both(suite: Suite) -> None:
    suite.write(
        "test_clash.py",
        """
        import pytest, pytest_llmcache

        @pytest_llmcache.cached(cassette="same")
        @pytest.fixture(scope="module")
        def first():
            return 1

        @pytest_llmcache.cached(cassette="same")
        @pytest.fixture(scope="module")
        def second():
            return 2

        @pytest.mark.llm_cache
        def test_both(first, second):
            pass
        """,
    )
    result = suite.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixtures *::first and *::second would share the cassette*"])


def test_cached_on_something_else_is_a_clear_error() -> None:
    import pytest_llmcache

    with pytest.raises(TypeError, match="goes on a fixture function"):
        pytest_llmcache.cached(ttl=5)(42)
    with pytest.raises(TypeError, match="unknown keyword 'tll'"):
        pytest_llmcache.cached(tll=5)
    with pytest.raises(ValueError, match=r"ttl"):
        pytest_llmcache.cached(ttl="soon")


def test_prune_keeps_the_cassette_of_a_fixture_whose_tests_were_skipped(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fixture lives in the test module: its cassette is in the folder prune looks in.
    suite.write(
        "test_corpus.py",
        CONFTEST
        + """
@pytest.mark.llm_cache
@pytest.mark.skipif(bool(os.environ.get("LATER")), reason="not today")
def test_uses_corpus(corpus):
    assert corpus[0] == 2

@pytest.mark.llm_cache
def test_other():
    pass
""",
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    before = suite.cassettes()
    assert list(before) == ["cassettes/test_corpus/fixture.corpus.yaml"]
    monkeypatch.setenv("LATER", "1")
    suite.run("--llm-cache-prune").assert_outcomes(passed=1, skipped=1)
    assert suite.cassettes() == before
