"""The one place that decides, for every intercepted call: replay, record or fail.

Adapters hand a :class:`Request` to the current test's :meth:`TestCache.decide` and get
back either a stored :class:`Response` or a :class:`Recording` to feed with the live
response. Everything about modes, TTLs, repeated requests and cassette bookkeeping is here,
so each HTTP library only converts its own objects.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

from . import _current, _messages
from ._capture import SecretFound, is_transient, make_entry, refusal_help
from ._cassette import Cassette, CassetteError, Change, Entry
from ._errors import CacheRefusal, ReplayMiss
from ._exchange import Headers, Request, Response
from ._key import KeyOptions, request_key
from ._secrets import credentials, mask_secrets
from ._settings import Mode, Settings, TestOptions
from ._stats import Counts, RunStats
from ._usage import replay_usage

__all__ = ["Engine", "Recording", "ReplayMiss", "TestCache"]

Normalizer = Callable[[Request], Request]


class Engine:
    """The run: its settings, the cassettes it has loaded and the totals of every test."""

    def __init__(
        self,
        settings: Settings,
        *,
        parse_cache: Path | None = None,
        normalize: Normalizer | None = None,
        display_root: Path | None = None,
        run_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.stats = RunStats()
        self.run_id = run_id or uuid.uuid4().hex
        self._parse_cache = parse_cache
        self._normalize = normalize
        self._display_root = display_root or Path.cwd()
        self._cassettes: dict[str, Cassette] = {}
        self._owned: set[str] = set()
        """The cassettes of ``stats.owned``, to find one in constant time."""
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    @property
    def display_root(self) -> Path:
        """Where pytest was started (or the script's folder): paths are shown from there."""
        return self._display_root

    def display(self, path: Path) -> str:
        """A path as the user should see it: relative to where pytest was started."""
        try:
            return str(path.relative_to(self._display_root))
        except ValueError:
            return str(path)

    def begin(
        self,
        nodeid: str,
        options: TestOptions,
        file: str,
        *,
        test_id: str | None = None,
        normalize: Normalizer | None = None,
    ) -> TestCache:
        """Start caching the calls of one test.

        ``nodeid`` is the test as the user types it where pytest was started; ``test_id``
        its node id from the rootdir, which entries store as their owner (the same from
        wherever pytest is started). ``normalize`` is the normalize hook as it applies to
        this test (by default, the run's).
        """
        test = TestCache(self, nodeid, options, file, test_id=test_id, normalize=normalize)
        if file not in self._owned:
            self._owned.add(file)
            self.stats.owned.append(file)
        _current.begin(test)
        return test

    def end(self, test: TestCache) -> None:
        """Stop caching for ``test``, write its cassette if it changed and add its totals."""
        _current.end(test)
        stats = self.stats
        stats.counts.add(test.counts)
        if test.counts.missed:
            stats.missed_tests.append(test.nodeid)
        if test.counts.expired:
            stats.expired_tests.append(test.nodeid)
        path = test.file
        if test.used:
            stats.used.setdefault(path, []).extend(itertools.chain.from_iterable(test.used))
        slots = test.recorded()
        cassette = self._cassettes.get(path)
        if cassette is not None and slots:
            # ``record`` replaces what this test recorded before, and nothing of other tests
            # sharing the file: those did not run, or run on their own.
            change = Change(
                test.test_id,
                slots,
                replace_own=self.settings.mode is Mode.RECORD,
                own_file=test.options.cassette is None,
            )
            try:
                written = cassette.commit(change)
            except CassetteError as exc:
                raise ReplayMiss(f"pytest-llmcache: {exc}") from None
            # Used too: where the entries recorded now stand among their keys' responses.
            places = cassette.places(slots.values())
            stats.used.setdefault(path, []).extend(itertools.chain.from_iterable(places))
            if written and path not in stats.written:
                stats.written.append(path)

    def cassette(self, file: str) -> Cassette:
        """The cassette in ``file``, read once per run."""
        cassette = self._cassettes.get(file)
        if cassette is None:
            # Replay reads an entry when it is used; a run that may write the file reads and
            # checks all of it first, so a damaged file stops it before any call is made.
            cassette = self._cassettes[file] = Cassette.load(
                Path(file), self._parse_cache, lazy=self.settings.mode is Mode.REPLAY
            )
        return cassette

    def on_disk(self, file: str) -> Cassette:
        """The cassette as the file holds it now, without reading it again if possible."""
        cassette = self._cassettes.get(file)
        if cassette is not None and not cassette.dirty:
            return cassette
        return Cassette.load(Path(file), self._parse_cache)

    def count_replay(
        self, entry: Entry, response: Response, *, expired: bool, test: TestCache
    ) -> None:
        """Add what replaying ``entry`` saved: its tokens and the seconds it took to record."""
        # The request is decoded only if the answer does not name its model. (Not kept for
        # the next replay of the entry: one object kept per replayed call costs more, in
        # every garbage collection of the run, than working it out again.)
        usage = replay_usage(lambda: entry.request, response)
        with self._lock:
            self.stats.add_saving(usage, entry.duration)
            if expired:
                self.stats.expired_entries.append([test.file, entry.key, test.nodeid])

    def normalize(self, request: Request) -> Request:
        """Apply the user's ``pytest_llm_cache_normalize_request`` hook, if any."""
        return request if self._normalize is None else self._normalize(request)

    def learn_secrets(self, request: Request) -> frozenset[str]:
        """Remember the credentials of ``request``; return all seen in this run."""
        found = credentials(request)
        with self._lock:
            self._secrets |= found
            return frozenset(self._secrets)


class TestCache:
    """One test's view of the cache: its cassette, its counts, and its call decisions."""

    __test__ = False

    def __init__(
        self,
        engine: Engine,
        nodeid: str,
        options: TestOptions,
        file: str,
        *,
        test_id: str | None = None,
        normalize: Normalizer | None = None,
    ) -> None:
        self.engine = engine
        self.nodeid = nodeid
        self.test_id = test_id or nodeid
        """The test's node id from the rootdir: what its entries name as their owner."""
        self.fix: _messages.Fix = None
        """How messages say to run the call again in another mode (default: pytest)."""
        self.options = options
        self.file = file
        """The cassette's file name (what the run's figures and its cassettes go by)."""
        self.mode = engine.settings.mode
        self.counts = Counts()
        self.messages: list[str] = []
        self._key_options = KeyOptions(
            options.ignore_fields, options.match_headers, options.match_api_key
        )
        self._occurrences: dict[str, int] = {}
        self._slots: dict[tuple[str, int], Entry] = {}
        self._lock = threading.Lock()
        self.used: list[tuple[str, int]] = []
        """The entries this test replayed: ``(key, place among the key's responses)``."""
        self._owner = self.test_id if options.cassette is not None else None
        """Whose answers the test replays first, in a cassette tests share (in its own, all)."""
        self.normalize: Normalizer = normalize if normalize is not None else engine.normalize
        """The user's normalize hook as it applies to this test's calls."""

    @functools.cached_property
    def path(self) -> Path:
        """The file this test's calls are recorded in and replayed from (made when asked
        for: most tests never need more than its name)."""
        return Path(self.file)

    @property
    def cassette_path(self) -> Path:
        """The file this test's calls are recorded in and replayed from."""
        return self.path

    def decide(self, request: Request) -> Response | Recording:
        """A stored response to replay, or a recording to fill from the provider.

        Raises :class:`ReplayMiss` when the call can be neither replayed nor recorded.
        """
        raw = request
        request = self.normalize(request)
        if request is not raw:
            request = self._normalized(request)
        key = request_key(request, self._key_options)
        with self._lock:
            occurrence = self._occurrences.get(key, 0)
            self._occurrences[key] = occurrence + 1
        # Read the cassette first in every mode: a damaged file stops the test before any
        # call reaches the provider.
        cassette = self._cassette()
        if self.mode is Mode.RECORD:
            return Recording(self, key, occurrence, request, raw)
        try:
            # Past the last recorded answer to a repeated request, the last one repeats.
            found = cassette.answer(
                key, occurrence, self._owner, repeat_last=self.mode is Mode.REPLAY
            )
        except CassetteError as exc:  # (an owner is read from the entries of a shared file)
            self._fail(f"pytest-llmcache: {exc}\n  test: {self.nodeid}")
        if found is not None:
            entry, slot = found
            try:
                # An entry of a version 2 file is read now, when first used.
                expired = entry.ttl is not None and entry.is_expired(datetime.now(timezone.utc))
                response = entry.to_response()
            except CassetteError as exc:
                self._fail(f"pytest-llmcache: {exc}\n  test: {self.nodeid}")
            if not expired or self.mode is Mode.REPLAY:
                with self._lock:
                    self.counts.replayed += 1
                    self.counts.expired += expired
                    self.used.append((key, slot))
                self.engine.count_replay(entry, response, expired=expired, test=self)
                entry.release()
                if expired and self.engine.settings.strict:
                    self._fail(self._expired_message(request, entry))
                if entry.cut_short:
                    message = self._cut_short_message(request, entry)
                    response = Response(
                        response.status,
                        response.headers,
                        response.chunks,
                        past_end=lambda: self._fail(message),
                        document=response.document,
                    )
                return response
        if self.mode is Mode.AUTO:
            return Recording(self, key, occurrence, request, raw)
        with self._lock:
            self.counts.missed += 1
        self._fail(self._miss_message(request, cassette))

    def _normalized(self, request: object) -> Request:
        """What the normalize hook returned, checked: a ``Request``, header names lower-case
        (as the key looks them up)."""
        if not isinstance(request, Request):
            self._fail(
                "pytest-llmcache: pytest_llm_cache_normalize_request returned "
                f"{type(request).__name__}, not a Request: return "
                "dataclasses.replace(request, ...), or None to keep it as it is\n"
                f"  test: {self.nodeid}"
            )
        if any(name != name.lower() for name, _ in request.headers):
            headers = tuple((name.lower(), value) for name, value in request.headers)
            request = dataclasses.replace(request, headers=headers)
        return request

    def bypassed(self, method: str, url: str, via: str) -> NoReturn:
        """A call went around the cache through ``via``: fail the test, in every mode.

        It may have reached the network and can be neither recorded nor replayed, so the
        test would not be what its marker promises.
        """
        self._fail(_messages.went_around(method, url, via, self.nodeid, None))

    def _cassette(self) -> Cassette:
        try:
            return self.engine.cassette(self.file)
        except CassetteError as exc:
            self._fail(f"pytest-llmcache: {exc}\n  test: {self.nodeid}")

    def _fail(self, message: str) -> NoReturn:
        # Whatever a message quotes, no credential reaches the terminal or a report.
        message = mask_secrets(message)
        self.messages.append(message)
        raise ReplayMiss(message)

    def refuse(self, message: str) -> NoReturn:
        """Fail the test for a call stopped before anything was sent (a blocked connection).

        The test fails even if the code under test catches the error.
        """
        message = mask_secrets(message)
        self.messages.append(message)
        raise CacheRefusal(message)

    def store(
        self,
        recording: Recording,
        status: int,
        headers: Headers,
        chunks: list[bytes],
        *,
        cut_short: bool = False,
    ) -> None:
        """Keep the live response of ``recording`` (unless it was a transient failure).

        ``cut_short``: the caller left the stream early and ``chunks`` are those it read.
        """
        if is_transient(status):
            with self._lock:
                self.counts.passed_through += 1
            return
        now = datetime.now(timezone.utc)
        secrets = self.engine.learn_secrets(recording.raw)
        found: SecretFound | None = None
        try:
            entry = make_entry(
                key=recording.key,
                request=recording.request,
                status=status,
                headers=headers,
                chunks=chunks,
                match_headers=self.options.match_headers,
                ttl=self.options.ttl,
                duration=time.perf_counter() - recording.started,
                now=now,
                secrets=secrets,
                test=self.test_id,
                cut_short=cut_short,
                allow_secrets=self.options.allow_secrets,
            )
        except SecretFound as exc:
            found = exc
        if found is not None:
            self._fail(
                f"pytest-llmcache: refusing to write {self.engine.display(self.path)}: "
                f"{_messages.call(recording.request)} holds a value shaped like an API key. "
                f"Nothing was written.\n  test: {self.nodeid}\n{refusal_help(found)}"
            )
        cassette = self._cassette()
        with self._lock:
            stored = cassette.answer(entry.key, recording.occurrence, self._owner)
            old = None if stored is None else stored[0]
            if old is not None and old.same_exchange(entry) and not old.is_expired(now):
                # Identical traffic keeps its timestamps, so re-recording changes no byte.
                entry = old if old.test == entry.test else old.with_test(entry.test)
            from ._drift import classify  # only recording pays for the comparison

            drift = classify(old, entry)
            self.engine.stats.drift.append(
                [self.nodeid, self.file, entry.key, drift.kind, drift.line]
            )
            # Kept by the call's own place, not appended: identical calls in flight at once
            # are stored in the order they were made, whatever order their answers came in.
            self._slots[(entry.key, recording.occurrence)] = entry
            self.counts.recorded += 1

    def recorded(self) -> dict[tuple[str, int], Entry]:
        """The entries this test recorded, by ``(key, occurrence)``."""
        with self._lock:
            return dict(self._slots)

    def _miss_message(self, request: Request, cassette: Cassette) -> str:
        count = len(cassette)
        state = (
            f"{count} {'entry' if count == 1 else 'entries'}"
            if self.path.exists()
            else "file does not exist"
        )
        from ._diff import nearest_message  # only a miss pays for the diff

        nearest = nearest_message(
            request,
            cassette,
            ignore_fields=self._key_options.ignore_fields,
            match_headers=self._key_options.match_headers,
        )
        where = self.engine.display(self.path)
        return _messages.miss(request, self.nodeid, where, state, nearest, self.fix)

    def _cut_short_message(self, request: Request, entry: Entry) -> str:
        chunks = len(entry.to_response().chunks)
        where = self.engine.display(self.path)
        return _messages.cut_short(request, self.nodeid, where, chunks, self.fix)

    def _expired_message(self, request: Request, entry: Entry) -> str:
        where = self.engine.display(self.path)
        return _messages.expired(
            request, self.nodeid, where, entry.recorded_at, entry.ttl or 0, self.fix
        )


class Recording:
    """A call on its way to the provider; the adapter feeds it the response as it arrives."""

    __slots__ = ("_chunks", "_done", "key", "occurrence", "raw", "request", "started", "test")

    def __init__(
        self, test: TestCache, key: str, occurrence: int, request: Request, raw: Request
    ) -> None:
        self.test = test
        self.key = key
        self.occurrence = occurrence
        self.request = request
        self.raw = raw
        self.started = time.perf_counter()
        self._chunks: list[bytes] = []
        self._done = False

    def add(self, chunk: bytes) -> None:
        """One more chunk of the body, as the caller receives it."""
        self._chunks.append(chunk)

    def finish(self, status: int, headers: Headers, *, cut_short: bool = False) -> None:
        """The body is complete, or the caller left it early (``cut_short``): store the
        exchange with the chunks read so far (once).

        A stream left because the run is being interrupted (Ctrl-C on its way out through
        the reader) was not left by the code under test: it is not stored.
        """
        if not self._done:
            self._done = True
            if cut_short and isinstance(sys.exc_info()[1], KeyboardInterrupt):
                return
            self.test.store(self, status, headers, self._chunks, cut_short=cut_short)

    def finish_failed(self) -> None:
        """The call failed before its body was complete: store nothing."""
        self._done = True

    @property
    def done(self) -> bool:
        """Whether the exchange was stored (or deliberately not)."""
        return self._done
