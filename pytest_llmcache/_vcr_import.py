"""``llm-cache import-vcr``: vcrpy and pytest-recording cassettes converted to ours.

The files are read with vcrpy itself (its serializers and ``Request``), so whatever vcrpy
can replay converts. Each interaction becomes an entry through the same path a live
recording takes (:func:`make_entry`): bodies decoded from gzip, secret headers dropped,
credentials scrubbed, key-shaped values refused. pytest-recording keeps its cassettes at
``cassettes/<module>/<test>.yaml`` beside the tests, as this plugin does, so the relative
layout is kept and the converted files sit where the plugin looks for them.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import _body
from ._capture import SecretFound, make_entry
from ._cassette import Cassette, CassetteError
from ._exchange import Headers, Request
from ._key import KeyOptions, request_key
from ._secrets import credentials

__all__ = ["ImportUsageError", "VcrFileError", "convert_file", "find_vcr_cassettes", "run"]

_SUFFIXES = (".yaml", ".yml", ".json")
_VCR_FORMAT = 1
_PROGRESS_EVERY = 100
_SSE_EVENTS = re.compile(rb".*?(?:\r\n\r\n|\n\n|\r\r)|.+", re.S)
_LINES = re.compile(rb"[^\n]*\n|[^\n]+")


class ImportUsageError(Exception):
    """The command line cannot work as given (exit status 2)."""


class VcrFileError(Exception):
    """One source file cannot be converted; nothing was written for it."""


@dataclass(frozen=True)
class _Vcr:
    """The parts of vcrpy the conversion uses, imported only when it runs."""

    yaml: Any
    json: Any
    request: Any
    compat: Any


def _vcrpy() -> _Vcr:
    try:
        # By name: vcrpy is optional and ships no type information.
        modules = [
            importlib.import_module(f"vcr.{name}")
            for name in ("serializers.yamlserializer", "serializers.jsonserializer", "request")
        ]
        compat = importlib.import_module("vcr.serializers.compat")
    except ImportError:
        raise VcrFileError(
            "import-vcr reads cassettes with vcrpy, which is not installed: pip install vcrpy"
        ) from None
    yaml_serializer, json_serializer, request = modules
    return _Vcr(yaml_serializer, json_serializer, request.Request, compat)


def run(
    src: Path,
    dest: Path | None,
    *,
    in_place: bool,
    ignore_fields: tuple[str, ...],
    match_headers: tuple[str, ...],
    verbose: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Convert ``src`` (a file or a folder) into ``dest``; return the exit status."""
    if not src.exists():
        raise ImportUsageError(f"{src}: no such file or directory")
    if dest is not None and src.is_dir() and dest.exists() and not dest.is_dir():
        raise ImportUsageError(f"{dest}: is a file; DEST must be a folder when SRC is one")
    progress = _Progress(err)
    try:
        vcr = _vcrpy()
    except VcrFileError as exc:
        progress.error(str(exc))
        return 1
    sources = find_vcr_cassettes(src)
    if not sources:
        progress.error(f"{src}: no vcrpy cassettes found (YAML or JSON with 'interactions')")
        return 1
    root = src if src.is_dir() else src.parent
    targets = [_target(path, root, src, dest) for path in sources]
    clashes = [p for p, t in zip(sources, targets, strict=True) if _same_file(p, t)]
    if clashes and not in_place:
        raise ImportUsageError(
            f"{clashes[0]}: the converted file would replace this vcrpy cassette "
            f"({len(clashes)} such file(s)); give a DEST folder, or pass --in-place "
            "(git keeps the originals)"
        )
    options = KeyOptions(ignore_fields=ignore_fields, match_headers=match_headers)
    secrets: set[str] = set()
    now = datetime.now(timezone.utc)
    done = failed = entries = empty = 0
    progress.start(len(sources))
    for number, (path, target) in enumerate(zip(sources, targets, strict=True), 1):
        try:
            cassette = convert_file(
                path, target, vcr, options, secrets, now, replacing=_same_file(path, target)
            )
            if len(cassette):
                cassette.save()
                done += 1
                entries += len(cassette)
                if verbose:
                    progress.note(out, f"{path} -> {target} ({len(cassette)} entries)")
            else:
                empty += 1
                if verbose:
                    progress.note(out, f"{path}: no interactions, nothing written")
        except (VcrFileError, CassetteError) as exc:
            failed += 1
            progress.error(f"{path}: {exc}" if isinstance(exc, VcrFileError) else str(exc))
        progress.tick(number)
    progress.finish()
    where = dest if dest is not None else root
    summary = f"converted {done} cassette(s), {entries} entries, into {where}"
    if empty:
        summary += f"; {empty} without interactions skipped"
    if failed:
        summary += f"; {failed} failed (see above, nothing written for them)"
    out.write(summary + "\n")
    return 1 if failed else 0


def find_vcr_cassettes(src: Path) -> list[Path]:
    """``src`` itself, or the vcrpy cassettes under it (other files are skipped quietly)."""
    if src.is_file():
        return [src]
    found = []
    for path in sorted(src.rglob("*")):
        parts = path.relative_to(src).parts
        if any(p.startswith(".") for p in parts) or path.suffix not in _SUFFIXES:
            continue
        if path.is_file() and _looks_like_vcr(path):
            found.append(path)
    return found


def _looks_like_vcr(path: Path) -> bool:
    try:
        text = path.read_bytes()
    except OSError:
        return True  # unreadable: let the conversion say so
    return re.search(rb'^(?:interactions:|\s*"interactions":)', text, re.M) is not None


def _target(path: Path, root: Path, src: Path, dest: Path | None) -> Path:
    if dest is not None and src.is_file() and dest.suffix in (".yaml", ".yml"):
        return dest
    relative = path.relative_to(root)
    return ((dest if dest is not None else root) / relative).with_suffix(".yaml")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def convert_file(
    path: Path,
    target: Path,
    vcr: _Vcr,
    options: KeyOptions,
    secrets: set[str],
    now: datetime,
    *,
    replacing: bool = False,
) -> Cassette:
    """The cassette for one vcrpy file, not yet written; raises :class:`VcrFileError`.

    ``secrets`` gathers the credentials of every request converted so far, so a key seen
    in one file is scrubbed wherever it reappears. An existing converted ``target`` keeps
    the timestamps of its unchanged entries, so converting again changes no byte.
    """
    requests, responses = _read(path, vcr)
    previous = None if replacing else _existing(target)
    neutral = [_request(r, number) for number, r in enumerate(requests, 1)]
    for request in neutral:
        secrets |= credentials(request)
    cassette = Cassette(target)
    occurrences: dict[str, int] = {}
    for number, (request, response) in enumerate(zip(neutral, responses, strict=True), 1):
        status, headers, chunks = _response(response, number)
        key = request_key(request, options)
        occurrence = occurrences.get(key, 0)
        occurrences[key] = occurrence + 1
        try:
            entry = make_entry(
                key=key,
                request=request,
                status=status,
                headers=headers,
                chunks=chunks,
                match_headers=options.match_headers,
                ttl=None,
                duration=0.0,
                now=now,
                secrets=secrets,
            )
        except SecretFound as exc:
            raise VcrFileError(
                f"interaction {number} holds a value shaped like an API key at {exc}; "
                "remove it from the source cassette (or re-record it) and convert again"
            ) from None
        old = previous.get(key, occurrence) if previous is not None else None
        cassette.put(occurrence, old if old is not None and old.same_exchange(entry) else entry)
    return cassette


def _read(path: Path, vcr: _Vcr) -> tuple[list[Any], list[dict[str, Any]]]:
    """The requests and responses of a vcrpy file, as vcrpy's own deserializer builds them."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VcrFileError(f"cannot read: {exc}") from None
    serializer = vcr.json if path.suffix == ".json" else vcr.yaml
    try:
        data = serializer.deserialize(text)
    except Exception as exc:  # any parser error of any serializer: report it, never crash
        raise VcrFileError(f"not a readable vcrpy cassette ({_parse_error(exc)})") from None
    if isinstance(data, dict) and "entries" in data and "interactions" not in data:
        raise VcrFileError("already a pytest-llmcache cassette; nothing to convert")
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise VcrFileError("not a vcrpy cassette (no 'interactions' list)")
    if data.get("version") != _VCR_FORMAT:
        raise VcrFileError(
            f"vcrpy cassette format version {data.get('version')!r} is not supported "
            f"(vcrpy 1.0 and later write version {_VCR_FORMAT})"
        )
    requests, responses = [], []
    for number, item in enumerate(data["interactions"], 1):
        try:
            requests.append(vcr.request._from_dict(item["request"]))
            responses.append(vcr.compat.convert_to_bytes(item["response"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise VcrFileError(f"interaction {number} is malformed ({exc!r})") from None
    return requests, responses


def _parse_error(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}: {problem}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _existing(target: Path) -> Cassette | None:
    if not target.exists():
        return None
    try:
        return Cassette.load(target)
    except CassetteError:
        raise VcrFileError(
            f"{target} exists and is not a pytest-llmcache cassette; not overwritten"
        ) from None


def _request(vcr_request: Any, number: int) -> Request:
    """Our neutral request from vcrpy's: what the key and the stored request come from."""
    try:
        raw = vcr_request.body_bytes if hasattr(vcr_request, "body_bytes") else vcr_request.body
        if hasattr(raw, "read"):
            raw = raw.read()
        elif isinstance(raw, list):
            raw = b"".join(raw)
        body = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
        headers = tuple((str(k).lower(), str(v)) for k, v in vcr_request.headers.items())
        return Request(str(vcr_request.method).upper(), str(vcr_request.uri), headers, body)
    except (TypeError, ValueError, AttributeError) as exc:
        raise VcrFileError(f"interaction {number}: unreadable request ({exc!r})") from None


def _response(response: dict[str, Any], number: int) -> tuple[int, Headers, list[bytes]]:
    """Status, headers and decoded body chunks of a vcrpy response (either layout)."""
    where = f"interaction {number}"
    try:
        if "status_code" in response:  # the layout of httpx cassettes before vcrpy 5
            status = int(response["status_code"])
            raw = response.get("content")
        else:
            status = int(response["status"]["code"])
            raw = (response.get("body") or {}).get("string")
        headers = _headers(response.get("headers") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VcrFileError(f"{where}: malformed response ({exc!r})") from None
    body = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
    chunks = [body]
    encoding = next((v for k, v in headers if k == "content-encoding"), None)
    if encoding and body:
        decoded = _body.decompress(chunks, encoding)
        if decoded is None and _is_text(body):
            # vcrpy's requests/urllib3 stubs store the body already decoded but keep the
            # header; compressed bytes are never valid UTF-8 text.
            decoded = chunks
        if decoded is None:
            raise VcrFileError(
                f"{where}: the response body is {encoding!r}-encoded and does not decode here "
                "(corrupt, or needs brotli / zstandard installed)"
            )
        chunks = decoded
        headers = tuple((k, v) for k, v in headers if k != "content-encoding")
    content_type = next((v for k, v in headers if k == "content-type"), None)
    if _body.is_stream_type(content_type):
        # vcrpy stores a stream whole; one chunk per event (or line) replays it as sent.
        whole = b"".join(chunks)
        splitter = _SSE_EVENTS if "event-stream" in (content_type or "") else _LINES
        chunks = splitter.findall(whole)
    return status, headers, chunks


def _is_text(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _headers(stored: dict[str, Any]) -> Headers:
    pairs: list[tuple[str, str]] = []
    for name, values in stored.items():
        for value in values if isinstance(values, list) else [values]:
            pairs.append((str(name).lower(), str(value)))
    return tuple(pairs)


class _Progress:
    """A counter on a terminal, else a line every hundred files; errors on their own line."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._tty = bool(getattr(err, "isatty", lambda: False)())
        self._total = 0
        self._shown = False

    def start(self, total: int) -> None:
        self._total = total

    def tick(self, done: int) -> None:
        if self._tty and self._total > 1:
            self._err.write(f"\rimport-vcr: {done}/{self._total} files")
            self._shown = True
        elif not self._tty and done % _PROGRESS_EVERY == 0 and done < self._total:
            self._err.write(f"import-vcr: {done}/{self._total} files\n")
        self._err.flush()

    def _clear(self) -> None:
        if self._shown:
            self._err.write("\r\033[K")
            self._shown = False

    def note(self, out: TextIO, message: str) -> None:
        self._clear()
        self._err.flush()
        out.write(message + "\n")
        out.flush()

    def error(self, message: str) -> None:
        self._clear()
        self._err.write(f"llm-cache: error: {message}\n")
        self._err.flush()

    def finish(self) -> None:
        self._clear()
        self._err.flush()
