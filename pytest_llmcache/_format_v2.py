"""Cassette format version 2: each message as text, read one entry at a time.

An entry's request and response are written the way HTTP shows them, as YAML literal blocks:
the request line or status, then ``name: value`` header lines; a JSON body as indented JSON;
an event stream as its event-stream text, one event per recorded chunk; an AWS event stream
as a list of its messages (:mod:`._events_v2`). A pull request shows the prompt, the answer
and every stream event verbatim, and PyYAML reads an entry as a handful of strings, several
times faster than the nested structures of version 1.

The writer starts every entry with ``- key: <key>`` at the start of a line, so a reader finds
each entry and its key without parsing YAML, and parses an entry only when it is used. A file
that does not keep that layout (edited by hand) is read whole, the slower way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, overload

from . import _body, _fast_v2, _jsontext
from ._entry import CassetteError, Entry, fill
from ._exchange import Headers, Response

__all__ = ["VERSION", "Index", "from_data", "read", "render"]

VERSION = 2

_HEAD = "version: 2\nentries:\n"
_ENTRY = "- key: "
_ITEM_LINE = "\n- "
"""Where an entry starts: each item of ``entries`` (its fields are indented)."""
_HEX = "0123456789abcdef"
# An entry after a line break to YAML that is no "\n" (a block's text that ends with one):
# on the same line of the file as the block, as Python counts lines.
_ENTRY_AFTER_CR = "\r" + _ENTRY
_ENTRY_AFTER_UNICODE_BREAK = tuple(b + _ENTRY for b in ("\x85", "\u2028", "\u2029"))
_FIELDS = (
    "key",
    "recorded_at",
    "ttl",
    "duration",
    "test",
    "cut_short",
    "allow_secrets",
    "request",
    "request_json",
    "request_json_style",
    "request_text",
    "request_base64",
    "response",
    "response_json",
    "response_json_style",
    "response_text",
    "response_base64",
    "response_sse",
    "response_sse_eol",
    "response_events",
    "response_frames",
    "response_chunks",
)
_KNOWN = frozenset(_FIELDS)
_REQUIRED = ("key", "recorded_at", "request", "response")
_INDENT = _body.json_style("indent")

# -- writing ---------------------------------------------------------------------------------


def render(entries: Sequence[Entry]) -> str:
    """The file's text: the same entries always give the same bytes."""
    if not entries:
        return "version: 2\nentries: []\n"
    parts = [_HEAD]
    for entry in entries:
        source = entry.source
        if isinstance(source, _Source) and source.text is not None and not entry.edited:
            # Read from a file in this layout and never changed: written back as it was.
            text = source.text[source.start : source.end]
            parts.append(text if text.endswith("\n") else text + "\n")
        else:
            parts.append(_render_entry(entry))
    return "".join(parts)


def _render_entry(entry: Entry) -> str:
    data = entry.to_data()
    out: dict[str, Any] = {k: v for k, v in data.items() if k not in ("request", "response")}
    request, response = entry.request, entry.response
    out["request"] = _head(f"{request.get('method', '')} {request.get('url', '')}", request)
    out.update(_body_fields("request", request.get("body") or {}))
    out["response"] = _head(str(response.get("status", "")), response)
    out.update(_body_fields("response", response.get("body") or {}))
    from . import _yaml  # writing only: a replay reads the writer's entries without it

    text = _yaml.dump([out])
    # A block kept with its trailing blank lines (``|+``) makes PyYAML end the document
    # with "..." on a line of its own: the next entry follows instead. (A body's own "...",
    # indented in its block, stays.)
    return text[:-4] if text.endswith("\n...\n") else text


def _head(first: str, message: dict[str, Any]) -> str:
    lines = [first]
    lines += [f"{name}: {value}" for name, value in (message.get("headers") or {}).items()]
    return "\n".join(lines) + "\n"


def _body_fields(side: str, stored: dict[str, Any]) -> dict[str, Any]:
    if "json" in stored:
        fields: dict[str, Any] = {f"{side}_json": _INDENT(stored["json"]) + "\n"}
        if "style" in stored:
            fields[f"{side}_json_style"] = stored["style"]
        return fields
    if "text" in stored:
        return {f"{side}_text": stored["text"]}
    if "base64" in stored:
        return {f"{side}_base64": stored["base64"]}
    if "chunks" in stored:
        from . import _events_v2, _frames_v2  # AWS event streams and WebSocket sessions

        events = _events_v2.render(stored["chunks"])
        if events is not None:
            return {f"{side}_events": events}
        frames = _frames_v2.render(stored["chunks"])
        if frames is not None:
            return {f"{side}_frames": frames}
        chunks = _body.decode_chunks(stored["chunks"])
        stream = _sse_text(chunks)
        if stream is not None:
            text, eol = stream
            # Stored without the last blank line, which every event stream ends with: the
            # block then reads as plainly as any other.
            fields = {f"{side}_sse": text[:-1]}
            return fields | ({f"{side}_sse_eol": "crlf"} if eol else {})
        return {f"{side}_chunks": [_body.encode_plain(chunk) for chunk in chunks]}
    return {}


def _sse_text(chunks: Sequence[bytes]) -> tuple[str, bool] | None:
    """The stream as one event-stream text, if each chunk is one whole event.

    The second item says the events end their lines with ``\\r\\n`` (stored as ``\\n``).
    """
    if not chunks:
        return None
    try:
        texts = [chunk.decode("utf-8") for chunk in chunks]
    except UnicodeDecodeError:
        return None
    crlf = texts[0].endswith("\r\n\r\n")
    if crlf:
        if any("\n" in t.replace("\r\n", "") or "\r" in t.replace("\r\n", "") for t in texts):
            return None
        texts = [t.replace("\r\n", "\n") for t in texts]
    for text in texts:
        # One event per chunk: the chunks can be found again at each blank line (so no
        # chunk may hold a second one, nor an empty line after its own).
        if "\r" in text or not text.endswith("\n\n") or "\n\n" in text[:-1]:
            return None
        if text.startswith("\n"):
            return None
    return "".join(texts), crlf


# -- reading ---------------------------------------------------------------------------------


def read(text: str, path: Path) -> Sequence[Entry]:
    """The entries of a version 2 file: lazy ones, or every one parsed if hand-edited."""
    entries = _scan(text, path)
    if entries is not None:
        return entries
    try:
        from . import _yaml

        data = _yaml.load(text)
    except _yaml.YAMLError as exc:
        raise _yaml_error(path, exc, 0) from None
    if not isinstance(data, dict):
        raise CassetteError(f"{path}: not a pytest-llmcache cassette")
    return from_data(data, path)


def from_data(data: dict[str, Any], path: Path) -> list[Entry]:
    """The entries of a version 2 file already parsed as YAML (a layout edited by hand)."""
    unknown = sorted(map(str, set(data) - {"version", "entries"}))
    if unknown:
        raise CassetteError(
            f"{path}: unknown top-level field(s) {', '.join(unknown)}; a cassette holds only "
            "'version' and 'entries'"
        )
    items = data.get("entries")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise CassetteError(f"{path}: 'entries' must be a list")
    entries = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise CassetteError(f"{path}: entry {number} is not a mapping with a 'key'")
        entry = Entry.lazy(item["key"], _FORMAT, _Source(path, item, number=number))
        _FORMAT.fields(entry)  # a whole-file read checks every entry now
        _FORMAT.replay(entry)
        entries.append(entry)
    return entries


def _scan(text: str, path: Path) -> Index | None:
    """Each entry's key and place in the text, or ``None`` if the layout is not the writer's.

    Only the entries' first lines are looked for: any other line that starts without
    indentation (a comment, a field) lies inside an entry's text, whose reader then leaves
    that entry to PyYAML when it is used.
    """
    if text == "version: 2\nentries: []\n":
        return Index(path, text, [], [])
    if not text.startswith(_HEAD + _ENTRY):
        return None
    if ("\r" in text and _ENTRY_AFTER_CR in text) or (
        not text.isascii() and any(after in text for after in _ENTRY_AFTER_UNICODE_BREAK)
    ):
        # An entry right after a line break YAML knows and Python's lines do not (a block
        # whose text ends with one): not where the search below looks for entries.
        return None
    keys = []
    starts = []
    find = text.find
    at = len(_HEAD) - 1
    while at >= 0:
        start = at + 1
        end = find("\n", start)
        key = text[start + len(_ENTRY) : end]
        if key[:1] == "'" and key[-1:] == "'":
            key = key[1:-1]
        if (
            not text.startswith(_ENTRY, start)
            or end < 0
            or not key
            or len(key) > 64
            or key.strip(_HEX)
        ):
            # An entry that starts with another field, or a key line as the writer does not
            # write it (edited by hand): for PyYAML.
            return None
        keys.append(key)
        starts.append(start)
        at = find(_ITEM_LINE, end)
    return Index(path, text, keys, starts)


_READ_AHEAD = 16
"""The most entries a file may have for all of its JSON entries to be read at its first use."""


class Index(Sequence[Entry]):
    """The entries of a file in the writer's layout, each made when it is asked for.

    Replaying one entry of a 2,000-entry file makes one entry: the keys and where each
    entry starts are all that reading the file keeps (strings and numbers, which add nothing
    for the garbage collector to walk). An entry made is not kept either: a replay uses it
    once and drops it, so a run that replays every entry of a large file leaves no objects
    behind for each, to be walked by every later collection.
    """

    def __init__(self, path: Path, text: str, keys: list[str], starts: list[int]) -> None:
        self._path = path
        self._text = text
        self.keys = keys
        """Each entry's key, in file order."""
        self._starts = starts
        self._ahead: list[tuple[dict[str, Any], str, Any] | tuple[()] | None] | None = None
        # Where each key is, by its occurrence: made in one step when no key repeats.
        first = dict(zip(keys, range(len(keys)), strict=True))
        self._first: dict[str, int] | None = first if len(first) == len(keys) else None
        self._all: dict[str, list[int]] | None = None
        if self._first is None:
            self._all = {}
            for position, key in enumerate(keys):
                self._all.setdefault(key, []).append(position)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...

    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.keys)))]
        if index < 0:
            index += len(self.keys)
        if not 0 <= index < len(self.keys):
            raise IndexError("entry index out of range")
        end = self._starts[index + 1] if index + 1 < len(self._starts) else len(self._text)
        source = _Source(self._path, self._text, self._starts[index], end)
        if len(self._starts) <= _READ_AHEAD and _fast_v2.ENABLED:
            source.json = self._read_ahead(index)
        return Entry.lazy(self.keys[index], _FORMAT, source)

    def _read_ahead(self, index: int) -> tuple[dict[str, Any], str, Any] | tuple[()] | None:
        """What the JSON reader gives for entry ``index``, read with the file's other entries
        when the first is asked for; ``None`` once handed out (then read again when asked).

        A test replays most of its file's entries, one per call: read one after the other,
        the entries are read with the reader's code and data still in the CPU's caches,
        which the client's own work between two calls would have evicted.
        """
        ahead = self._ahead
        if ahead is None:
            text, starts = self._text, self._starts
            ends = [*starts[1:], len(text)]
            read = _fast_v2.json_entry
            ahead = [read(text, start, end) or () for start, end in zip(starts, ends, strict=True)]
            self._ahead = ahead
        found = ahead[index]
        ahead[index] = None  # (not kept: a run that replays every entry keeps nothing of them)
        return found

    def __iter__(self) -> Iterator[Entry]:
        return map(self.__getitem__, range(len(self.keys)))

    def positions(self, key: str) -> list[int]:
        """Where ``key``'s entries are, in file order."""
        if self._first is not None:
            found = self._first.get(key)
            return [] if found is None else [found]
        assert self._all is not None
        return self._all.get(key, [])


class _Source:
    """Where a lazy entry is read from: a slice of the file's text, or a parsed mapping."""

    __slots__ = ("data", "end", "json", "number", "path", "start", "text")

    def __init__(
        self, path: Path, data: Any, start: int = 0, end: int = 0, *, number: int = 0
    ) -> None:
        self.path = path
        self.text: str | None = data if isinstance(data, str) else None
        self.data: dict[str, Any] | None = None if isinstance(data, str) else data
        self.start = start
        self.end = end
        self.number = number
        self.json: tuple[dict[str, Any], str, Any] | tuple[()] | None = None
        """What a replay of a JSON answer reads (:func:`._fast_v2.json_entry`): ``None``
        until it is tried, ``()`` if the entry is not one."""

    def line(self) -> int:
        """The file's line where the entry starts."""
        return 0 if self.text is None else self.text.count("\n", 0, self.start) + 1

    def where(self) -> str:
        """The entry, as messages name it."""
        if self.text is None:
            return f"{self.path}: entry {self.number}"
        return f"{self.path}:{self.line()}: entry"

    def item_where(self, field: str, number: int) -> str:
        """Item ``number`` of the list ``field``, as messages name it: on its own line when
        the entry is in the writer's layout."""
        if self.text is not None:
            text = self.text[self.start : self.end]
            at = text.find(f"\n  {field}:\n")
            for _ in range(number if at >= 0 else 0):
                at = text.find("\n  - ", at + 1)
                if at < 0:
                    break
            else:
                if at >= 0:
                    line = self.line() + text.count("\n", 0, at) + 1
                    return f"{self.path}:{line}: entry {field} item {number}"
        return f"{self.where()} {field} item {number}"

    def block_where(self, field: str, line: int) -> str:
        """Line ``line`` (from 1) of the block ``field``, as messages name it: the file's own
        line when the entry is in the writer's layout."""
        if self.text is not None:
            text = self.text[self.start : self.end]
            at = text.find(f"\n  {field}: |")
            if at >= 0:
                header = self.line() + text.count("\n", 0, at) + 1
                return f"{self.path}:{header + line}: entry"
        return self.where()

    def release(self) -> None:
        """Forget the parsed fields, if they can be parsed again from the text."""
        if self.text is not None:
            self.data = None
            self.json = None

    def json_entry(self) -> tuple[dict[str, Any], str, Any] | None:
        """The fields, response block and JSON answer a replay reads, if the entry is a
        JSON answer in the writer's layout (read once, until released)."""
        found = self.json
        if found is None:
            found = ()
            if self.text is not None and _fast_v2.ENABLED:
                found = _fast_v2.json_entry(self.text, self.start, self.end) or ()
            self.json = found
        return found or None

    def mapping(self) -> dict[str, Any]:
        """The entry's fields, parsed once (until released)."""
        if self.data is None:
            assert self.text is not None
            text = self.text[self.start : self.end]
            fast = _fast_v2.read_entry(text, _KNOWN) if _fast_v2.ENABLED else None
            if fast is not None:
                self.data = fast
                return fast
            from . import _yaml

            try:
                loaded = _yaml.load(text)
            except _yaml.YAMLError as exc:
                raise _yaml_error(self.path, exc, self.line() - 1) from None
            if not (isinstance(loaded, list) and len(loaded) == 1 and isinstance(loaded[0], dict)):
                raise CassetteError(f"{self.where()} is not a mapping")
            self.data = loaded[0]
        return self.data


class _Where:
    """An entry as messages name it, worked out only when a message needs it (finding the
    line means counting the lines before it, too costly for every entry read)."""

    __slots__ = ("_source",)

    def __init__(self, source: _Source) -> None:
        self._source = source

    def __str__(self) -> str:
        return self._source.where()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def item(self, field: str, number: int) -> str:
        """Item ``number`` of the list ``field``, on its own line where it can be found."""
        return self._source.item_where(field, number)

    def block(self, field: str, line: int) -> str:
        """Line ``line`` of the block ``field``, on its own line where it can be found."""
        return self._source.block_where(field, line)


def _yaml_error(path: Path, exc: Exception, offset: int) -> CassetteError:
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1 + offset}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return CassetteError(
        f"{path}{where}: not a valid cassette (YAML error: {problem}); the file may be "
        "truncated or hand-edited: restore it from git or re-record it"
    )


class _Version2:
    """Builds a lazy entry's fields, bodies and replayed response from its text."""

    def release(self, entry: Entry) -> None:
        entry.source.release()

    def fields(self, entry: Entry) -> None:
        found = entry.source.json_entry()
        if found is not None:
            head = found[0]
            recorded_at = head["recorded_at"]
            if _is_time(recorded_at):
                # (Each value is of the type an entry holds: the reader made it so.)
                _set(entry, "recorded_at", recorded_at)
                _set(entry, "ttl", head.get("ttl"))
                _set(entry, "duration", head["duration"])
                _set(entry, "test", head.get("test"))
                _set(entry, "cut_short", head.get("cut_short") is True)
                _set(entry, "allow_secrets", ())
                return
        data = entry.source.mapping()
        get = data.get
        ttl = get("ttl")
        duration = get("duration")
        test = get("test")
        recorded_at = get("recorded_at")
        request = get("request")
        response = get("response")
        # The writer's entry, every field of the type it writes: set as it is. Anything else
        # is checked field by field below, which names the first problem.
        if (
            _KNOWN.issuperset(data)
            and type(recorded_at) is str
            and _is_time(recorded_at)
            and (ttl is None or type(ttl) is int or type(ttl) is float)
            and (type(duration) is float or type(duration) is int)
            and (test is None or type(test) is str)
            and type(request) is str
            and type(response) is str
            and request
            and not request.isspace()
            and response
            and not response.isspace()
            and get("key") == entry.key
            and "allow_secrets" not in data
        ):
            _set(entry, "recorded_at", recorded_at)
            _set(entry, "ttl", None if ttl is None else float(ttl))
            _set(entry, "duration", float(duration))
            _set(entry, "test", test)
            _set(entry, "cut_short", get("cut_short") is True)
            _set(entry, "allow_secrets", ())
            return
        self._fields(entry)

    def _fields(self, entry: Entry) -> None:
        """:meth:`fields` for any entry, checking each field in turn to name the first problem."""
        source: _Source = entry.source
        data = source.mapping()
        where = _Where(source)
        if not _KNOWN.issuperset(data):
            unknown = sorted(set(map(str, data)) - _KNOWN)
            raise CassetteError(f"{where}: unknown field(s) {', '.join(unknown)}")
        missing = [name for name in _REQUIRED if name not in data]
        if missing:
            raise CassetteError(f"{where} lacks {', '.join(missing)} (truncated or hand-edited?)")
        if str(data["key"]) != entry.key:
            raise CassetteError(f"{where}: key {data['key']!r} is not the key it is filed under")
        ttl = data.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
            raise CassetteError(f"{where}: ttl must be a number of seconds, got {ttl!r}")
        duration = data.get("duration") or 0.0
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise CassetteError(f"{where}: duration must be a number of seconds")
        allowed = data.get("allow_secrets") or []
        if not isinstance(allowed, list):
            raise CassetteError(f"{where}: allow_secrets must be a list")
        for name in ("request", "response"):
            if not isinstance(data[name], str) or not data[name].strip():
                raise CassetteError(f"{where}: {name} must be a text block")
        recorded_at = str(data["recorded_at"])
        if not _is_time(recorded_at):
            raise CassetteError(f"{where}: recorded_at {recorded_at!r} is not an ISO 8601 time")
        test = data.get("test")
        fill(
            entry,
            recorded_at=recorded_at,
            ttl=None if ttl is None else float(ttl),
            duration=float(duration),
            test=None if test is None else str(test),
            cut_short=data.get("cut_short") is True,
            allow_secrets=tuple(map(str, allowed)) if allowed else (),
        )

    def request(self, entry: Entry) -> None:
        source: _Source = entry.source
        data = source.mapping()
        where = _Where(source)
        if not isinstance(data.get("request"), str):
            self.fields(entry)  # raises the precise error
        method, _, url = _lines(data["request"])[0].partition(" ")
        request = {
            "method": method,
            "url": url,
            "headers": dict(_headers(data["request"], where)),
            "body": _stored_body(data, "request", where),
        }
        fill(entry, request=request)

    def response(self, entry: Entry) -> None:
        source: _Source = entry.source
        data = source.mapping()
        where = _Where(source)
        response = self.replay(entry)
        body = _stored_body(data, "response", where)
        stored = {"status": response.status, "headers": dict(response.headers), "body": body}
        fill(entry, response=stored)

    def replay(self, entry: Entry) -> Response:
        found = entry.source.json_entry()
        if found is not None:
            head = _writers_head(found[1])
            if head is not None:
                value = found[2]
                return Response(*head, (_COMPACT(value).encode(),), document=value)
        data = entry.source.mapping()
        head = _writers_head(data.get("response"))
        if head is not None:
            status, headers = head
            text = data.get("response_json")
            if type(text) is str and "response_json_style" not in data:
                # The most common body, compact JSON (stored indented), read in fewest steps.
                try:
                    value = _jsontext.parse(text)
                except (RecursionError, ValueError):
                    pass  # told below, naming the entry
                else:
                    return Response(status, headers, (_COMPACT(value).encode(),), document=value)
            else:
                try:
                    if "response_json" in data:
                        body, value = _json_body(data, "response", _SOMEWHERE)
                        return Response(status, headers, (body,), document=value)
                    return Response(status, headers, _chunks(data, "response", _SOMEWHERE))
                except CassetteError:
                    pass  # told below, naming the entry
        return self._replay(entry)

    def _replay(self, entry: Entry) -> Response:
        """:meth:`replay` for any entry, checking each part in turn to name the first problem."""
        source: _Source = entry.source
        data = source.mapping()
        where = _Where(source)
        if not isinstance(data.get("response"), str):
            self.fields(entry)  # raises the precise error
        status_line = _lines(data["response"])[0].strip()
        if not status_line.isdigit() or not 100 <= int(status_line) <= 999:
            raise CassetteError(
                f"{where}: response needs a three-digit status on its first line, "
                f"got {status_line!r}"
            )
        headers = tuple(_headers(data["response"], where))
        if "response_json" in data:
            body, value = _json_body(data, "response", where)
            return Response(int(status_line), headers, (body,), document=value)
        return Response(int(status_line), headers, _chunks(data, "response", where))


_FORMAT = _Version2()


_set = object.__setattr__


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_COMPACT = _body.json_style("compact")
# Stands for the entry in the messages of a first attempt, which an error sends to the
# attempt that names the entry's line (finding it is costly).
_SOMEWHERE = "entry"


def _writers_head(block: object) -> tuple[int, Headers] | None:
    """The status and headers of a response block as the writer writes it, or ``None`` for
    any other block (which :meth:`_Version2._replay` reads, or names the problem of)."""
    if type(block) is not str:
        return None
    lines = block.split("\n")
    first = lines[0]
    if not (len(first) == 3 and first.isascii() and first.isdigit() and first[0] != "0"):
        return None
    if lines.pop() != "":
        return None
    status = int(first)
    headers = []
    for line in lines[1:]:
        # As _headers() reads it; an empty line, or one without ": ", is left to it.
        name, sep, value = line.partition(": ")
        if not sep or not name:
            return None
        headers.append((name, value))
    return status, tuple(headers)


def _lines(block: str) -> list[str]:
    return block.split("\n")


def _headers(block: str, where: object) -> list[tuple[str, str]]:
    headers = []
    for line in _lines(block)[1:]:
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            name, sep, value = line.partition(":")
        if not sep or not name:
            raise CassetteError(f"{where}: header line {line!r} is not 'name: value'")
        headers.append((name, value))
    return headers


def _stored_body(data: dict[str, Any], side: str, where: object) -> dict[str, Any]:
    """The body in the stored form of :mod:`._body` (what diffs, reports and usage read)."""
    if f"{side}_json" in data:
        value = _json(data, side, where)
        style = data.get(f"{side}_json_style")
        return {"json": value} if style is None else {"json": value, "style": str(style)}
    if f"{side}_text" in data:
        return {"text": _text(data, f"{side}_text", where)}
    if f"{side}_base64" in data:
        return {"base64": _text(data, f"{side}_base64", where)}
    if f"{side}_events" in data:
        return {"chunks": [{"event": event} for event in _events(data, side, where)]}
    if f"{side}_sse" in data or f"{side}_chunks" in data or f"{side}_frames" in data:
        return {"chunks": _body.encode_chunks(_chunks(data, side, where))}
    return {}


_LF_END = b"\n\n"
_CRLF_END = b"\r\n\r\n"


def _chunks(data: dict[str, Any], side: str, where: object) -> tuple[bytes, ...]:
    """The exact chunks of a body, straight from the file's text."""
    if f"{side}_sse" in data:
        # The text holds each event with its blank line, but the last one's: its last line
        # break is the block's own.
        text = _text(data, f"{side}_sse", where)
        if text[-1:] != "\n":
            raise CassetteError(f"{where}: {side}_sse must end each event with a blank line")
        eol = data.get(f"{side}_sse_eol")
        if eol is not None and eol != "crlf":
            raise CassetteError(f"{where}: {side}_sse_eol must be 'crlf', got {eol!r}")
        # Encoded once, then cut into its events (each with its blank line).
        body = text.encode()
        if eol:
            body = body.replace(b"\n", b"\r\n")
        end = _CRLF_END if eol else _LF_END
        half = len(end) // 2  # one line break
        if body[-len(end) : -half] == end[:half]:
            # An empty line at the end stays with the last event: the block's own last line
            # break is taken off before the cut.
            events = body[:-half].split(end)
        else:
            # The usual text: cut first (the whole stream is not copied), then the block's
            # last line break is taken off the last event.
            events = body.split(end)
            events[-1] = events[-1][:-half]
        return tuple([event + end for event in events])
    if f"{side}_events" in data:
        return tuple(_body.decode_event(event) for event in _events(data, side, where))
    if f"{side}_frames" in data:
        return tuple(_frames(data, side, where))
    if f"{side}_chunks" in data:
        items = data[f"{side}_chunks"]
        if not isinstance(items, list):
            raise CassetteError(f"{where}: {side}_chunks must be a list")
        chunks = []
        for number, item in enumerate(items, 1):
            problem = _body.body_problem(item) if isinstance(item, dict) else "must be a mapping"
            if problem is not None or not isinstance(item, dict) or "chunks" in item:
                raise CassetteError(f"{where}: {side}_chunks item {number} {problem or ''}")
            chunks.append(_body.decode_body(item))
        return tuple(chunks)
    if f"{side}_json" in data:
        return (_json_body(data, side, where)[0],)
    if f"{side}_text" in data:
        return (_text(data, f"{side}_text", where).encode(),)
    if f"{side}_base64" in data:
        try:
            return (base64.b64decode(_text(data, f"{side}_base64", where), validate=True),)
        except ValueError:
            raise CassetteError(f"{where}: {side}_base64 is not valid base64") from None
    return (b"",)


def _json_body(data: dict[str, Any], side: str, where: object) -> tuple[bytes, Any]:
    """A JSON body's exact bytes, in its stored style, and the value they hold."""
    value = _json(data, side, where)
    style = data.get(f"{side}_json_style")
    if style is not None and _body.body_problem({"json": 0, "style": style}) is not None:
        raise CassetteError(f"{where}: unknown {side}_json_style {style!r}")
    return _body.json_style(str(style or "compact"))(value).encode(), value


def _events(data: dict[str, Any], side: str, where: object) -> list[dict[str, Any]]:
    """The stored messages of an AWS event stream (:mod:`._events_v2`), each checked."""
    from . import _events_v2

    items: list[dict[str, Any]] = _items(data, f"{side}_events", where, _events_v2.read)
    return items


def _frames(data: dict[str, Any], side: str, where: object) -> list[bytes]:
    """The stored chunks of a WebSocket session (:mod:`._frames_v2`), each checked."""
    from . import _frames_v2

    frames: list[bytes] = _items(data, f"{side}_frames", where, _frames_v2.read)
    return frames


def _items(data: dict[str, Any], field: str, where: object, read: Any) -> Any:
    """A list field read by its module, whose errors name the item's own line."""

    def place(number: int) -> str:
        if isinstance(where, _Where):
            return where.item(field, number)
        return f"{where} {field} item {number}"

    return read(data[field], f"{where}: {field}", place)


def _text(data: dict[str, Any], name: str, where: object) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise CassetteError(f"{where}: {name} must be text")
    return value


def _json(data: dict[str, Any], side: str, where: object) -> Any:
    try:
        return _jsontext.parse(_text(data, f"{side}_json", where))
    except RecursionError:
        raise CassetteError(f"{where}: {side}_json is nested too deeply") from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError) and isinstance(where, _Where):
            # The file's line of the error, and what is wrong there.
            at = where.block(f"{side}_json", exc.lineno)
            raise CassetteError(
                f"{at}: {side}_json is not valid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        raise CassetteError(f"{where}: {side}_json is not valid JSON: {exc}") from None
