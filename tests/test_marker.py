"""The llm_cache marker, the llm_cache and llm_cache_config fixtures, and cassette paths."""

from __future__ import annotations

import pytest
from conftest import Suite

from pytest_llmcache._cassette import Cassette

CALL = """
import os, httpx

def ask(content, **headers):
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    url = os.environ["FAKE_URL"] + "/v1/chat/completions"
    return httpx.post(url, json=body, headers=headers).json()["choices"][0]["message"]["content"]
"""


def test_class_and_module_markers_and_parametrized_ids_name_the_cassettes(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_paths.py",
        """
        import pytest
        from helpers import ask

        pytestmark = pytest.mark.llm_cache

        def test_plain():
            assert ask("one") == "Echo: one"

        class TestGroup:
            @pytest.mark.parametrize("word", ["a b", "x/y"])
            def test_param(self, word):
                assert ask(word) == "Echo: " + word
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=3)
    assert sorted(suite.cassettes()) == [
        "cassettes/test_paths/TestGroup.test_param[a-b].yaml",
        "cassettes/test_paths/TestGroup.test_param[x-y].yaml",
        "cassettes/test_paths/test_plain.yaml",
    ]
    suite.run().assert_outcomes(passed=3)
    assert suite.upstream() == 3


def test_over_long_names_are_shortened_with_a_hash(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_long.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        @pytest.mark.parametrize("text", ["x" * 300], ids=["x" * 300])
        def test_long(text):
            assert ask("hi") == "Echo: hi"
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    (name,) = suite.cassettes()
    stem = name.rsplit("/", 1)[1]
    assert len(stem) <= 125
    assert stem.startswith("test_long[xxxx")
    suite.run().assert_outcomes(passed=1)


def test_a_shared_cassette_holds_the_entries_of_several_tests(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_shared.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache(cassette="shared_chat")
        def test_one():
            assert ask("one") == "Echo: one"

        @pytest.mark.llm_cache(cassette="shared_chat")
        def test_two():
            assert ask("two") == "Echo: two"
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    cassettes = suite.cassettes()
    assert list(cassettes) == ["cassettes/test_shared/shared_chat.yaml"]
    assert cassettes["cassettes/test_shared/shared_chat.yaml"].count("- key:") == 2
    suite.run().assert_outcomes(passed=2)
    assert suite.upstream() == 2


def test_ignore_fields_and_match_headers_shape_the_key(
    suite: Suite, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.write(
        "test_keyshape.py",
        """
        import os, httpx, pytest

        URL = os.environ["FAKE_URL"] + "/v1/chat/completions"
        RUN = os.environ.get("RUN", "1")

        @pytest.mark.llm_cache(ignore_fields=["metadata.run"])
        def test_ignored_field():
            body = {"model": "m", "messages": [], "metadata": {"run": RUN}}
            assert httpx.post(URL, json=body).status_code == 200

        @pytest.mark.llm_cache(match_headers=["x-tenant"])
        def test_matched_header():
            body = {"model": "m", "messages": []}
            assert httpx.post(URL, json=body, headers={"x-tenant": RUN}).status_code == 200
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    (entry,) = Cassette.load(suite.path / "cassettes/test_keyshape/test_matched_header.yaml")
    assert entry.request["headers"]["x-tenant"] == "1", "a matched header is stored"
    monkeypatch.setenv("RUN", "2")
    result = suite.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_keyshape.py::test_matched_header*"])


def test_the_config_fixture_sets_defaults_and_markers_override_them(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "conftest.py",
        """
        import pytest

        @pytest.fixture
        def llm_cache_config():
            return {"ttl": "1h", "cassette": "from_config"}
        """,
    )
    suite.write(
        "test_cfg.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        def test_config(llm_cache):
            assert ask("a") == "Echo: a"
            assert llm_cache.options.ttl == 3600
            assert llm_cache.cassette_path.name == "from_config.yaml"

        @pytest.mark.llm_cache(ttl=60)
        def test_marker_wins(llm_cache):
            assert llm_cache.options.ttl == 60
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=2)
    assert "ttl: 3600" in suite.cassettes()["cassettes/test_cfg/from_config.yaml"]


def test_function_marker_overrides_class_marker(suite: Suite) -> None:
    suite.write(
        "test_nested.py",
        """
        import pytest

        @pytest.mark.llm_cache(ttl="1d", match_headers=["x-a"])
        class TestIt:
            @pytest.mark.llm_cache(ttl="15m")
            def test_it(self, llm_cache):
                assert llm_cache.options.ttl == 900
                assert llm_cache.options.match_headers == ("x-a",)
        """,
    )
    suite.run().assert_outcomes(passed=1)


def test_the_fixture_counts_this_tests_calls(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_counts.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        def test_counts(llm_cache, request):
            ask("a"); ask("b")
            mode = request.config.getoption("llm_cache_mode") or "replay"
            counts = llm_cache.counts
            if mode == "record":
                assert (counts.recorded, counts.replayed) == (2, 0)
            else:
                assert (counts.recorded, counts.replayed) == (0, 2)
            assert llm_cache.cassette_path.parts[-3:] == (
                "cassettes", "test_counts", "test_counts.yaml"
            )
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    suite.run().assert_outcomes(passed=1)


def test_requesting_the_fixture_alone_turns_the_cache_on(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_fixture_only.py",
        """
        from helpers import ask

        def test_unmarked(llm_cache):
            assert ask("a") == "Echo: a"
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert list(suite.cassettes()) == ["cassettes/test_fixture_only/test_unmarked.yaml"]


def test_unmarked_tests_are_untouched_unless_the_suite_switch_is_on(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_unmarked.py",
        """
        from helpers import ask

        def test_plain():
            assert ask("a") == "Echo: a"
        """,
    )
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == 1, "an unmarked test goes to the network"
    assert suite.cassettes() == {}
    suite.write("pytest.ini", "[pytest]\nllm_cache_all_tests = true\n")
    suite.run().assert_outcomes(failed=1)
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert list(suite.cassettes()) == ["cassettes/test_unmarked/test_plain.yaml"]


def test_llm_cache_dir_moves_the_root(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "tests/test_moved.py",
        """
        import pytest
        from helpers import ask

        @pytest.mark.llm_cache
        def test_moved():
            assert ask("a") == "Echo: a"
        """,
    )
    suite.write("pytest.ini", "[pytest]\nllm_cache_dir = recordings\npythonpath = .\n")
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    assert (suite.path / "recordings/tests/test_moved/test_moved.yaml").is_file()


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            "llm_cache(tll=5)",
            "unknown keyword 'tll'; allowed: allow_hosts, allow_secrets, cassette, ignore_fields",
        ),
        ("llm_cache(ttl='soon')", "ttl 'soon' is not a duration"),
        ("llm_cache(ttl=0)", "ttl must be positive"),
        ("llm_cache(ttl=True)", "ttl must be seconds"),
        ("llm_cache('x')", "takes keywords only"),
        ("llm_cache(cassette='../up')", "must be a plain name"),
        ("llm_cache(ignore_fields=[1])", "ignore_fields=...) must be a list of non-empty strings"),
        ("llm_cache(match_api_key='yes')", "match_api_key=...) must be True or False"),
    ],
)
def test_bad_marker_values_fail_the_test_naming_the_keyword(
    suite: Suite, marker: str, expected: str
) -> None:
    suite.write(
        "test_bad.py",
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_bad():
            pass

        def test_other_tests_still_run():
            pass
        """,
    )
    result = suite.run()
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "test_bad.py::test_bad" in out
    assert expected in out


def test_function_fixtures_go_to_the_test_and_session_fixtures_to_their_own(
    suite: Suite,
) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_scopes.py",
        """
        import pytest
        from helpers import ask

        @pytest.fixture(scope="session")
        def warmed():
            return ask("session setup")

        @pytest.fixture
        def greeting():
            return ask("function setup")

        @pytest.mark.llm_cache
        def test_it(warmed, greeting, llm_cache):
            assert greeting == "Echo: function setup"
            assert llm_cache.counts.recorded + llm_cache.counts.replayed == 1
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=1)
    files = suite.cassettes()
    text = files["cassettes/test_scopes/test_it.yaml"]
    assert "function setup" in text
    assert "session setup" not in text
    assert "session setup" in files["cassettes/test_scopes/fixture.warmed.yaml"]
    before = suite.upstream()
    suite.run().assert_outcomes(passed=1)
    assert suite.upstream() == before


def test_the_cache_is_on_through_the_teardown_of_function_fixtures(suite: Suite) -> None:
    suite.write("helpers.py", CALL)
    suite.write(
        "test_teardown.py",
        """
        import pytest
        from helpers import ask

        @pytest.fixture(scope="module")
        def shared():
            yield
            ask("module teardown")

        @pytest.fixture
        def per_test():
            yield
            ask("function teardown")

        @pytest.mark.llm_cache
        def test_first(shared, per_test):
            pass

        @pytest.mark.llm_cache
        @pytest.mark.skip(reason="not today")
        def test_skipped(shared):
            ask("never")

        @pytest.mark.llm_cache
        def test_last(shared, per_test):
            ask("last call")
        """,
    )
    suite.run("--llm-cache=record").assert_outcomes(passed=2, skipped=1)
    files = suite.cassettes()
    assert "function teardown" in files["cassettes/test_teardown/test_first.yaml"]
    last = files["cassettes/test_teardown/test_last.yaml"]
    assert "last call" in last
    assert "function teardown" in last
    # The module fixture is torn down with the last test: its call goes to its own cassette.
    assert "module teardown" not in last
    assert "module teardown" in files["cassettes/test_teardown/fixture.shared.yaml"]
    assert "cassettes/test_teardown/test_skipped.yaml" not in files
    before = suite.upstream()
    suite.run().assert_outcomes(passed=2, skipped=1)
    assert suite.upstream() == before
