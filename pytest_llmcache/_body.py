"""Bodies as they are stored: readable YAML structures that give back the exact bytes.

A body becomes JSON structure, SSE events, text or base64, whichever is the most readable
form that re-encodes to the very same bytes; anything that would not survive the round trip
falls back to a plainer form. Compressed bodies are stored decoded. An AWS event stream is
stored message by message (``{"event": {"headers": <lines>, "json": ...}}``, one chunk each,
whatever chunks it arrived in), so replay hands the client one whole frame at a time.
"""

from __future__ import annotations

import base64
import importlib
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import _jsontext

__all__ = [
    "STREAM_TYPES",
    "body_problem",
    "decode_body",
    "decode_chunks",
    "decode_event",
    "decompress",
    "encode_body",
    "encode_chunks",
    "encode_plain",
    "event_problem",
    "is_stream_type",
    "json_style",
]

StoredBody = dict[str, Any]

STREAM_TYPES = (
    "text/event-stream",
    "application/x-ndjson",
    "application/jsonl",
    "application/vnd.amazon.eventstream",
    "application/x-llm-cache-websocket",
)
"""Media types stored chunk by chunk (an AWS event stream: frame by frame; a WebSocket
session: message by message); other bodies are stored whole."""


def is_stream_type(content_type: str | None) -> bool:
    """Whether a response of this content type is stored chunk by chunk."""
    if not content_type:
        return False
    lowered = content_type.lower()
    return any(t in lowered for t in STREAM_TYPES)


# JSON serializations seen from providers and SDKs, tried in order until one reproduces the
# original bytes exactly. The first is the default and is not written to the cassette.
def _styles() -> dict[str, Callable[[object], str]]:
    styles: dict[str, Callable[[object], str]] = {}
    layouts: dict[str, dict[str, Any]] = {
        "compact": {"separators": (",", ":")},
        "spaced": {"separators": (", ", ": ")},
        "indent": {"indent": 2, "separators": (",", ": ")},
    }
    for layout, options in layouts.items():
        for ascii_suffix, ensure_ascii in (("", False), ("+ascii", True)):
            # Made once: json.dumps with options makes a new encoder on every call.
            encode = _jsontext.encoder(json.JSONEncoder(ensure_ascii=ensure_ascii, **options))
            for nl_suffix, newline in (("", ""), ("+nl", "\n")):

                def dump(
                    data: object, _e: Callable[[object], str] = encode, _n: str = newline
                ) -> str:
                    return _e(data) + _n

                styles[layout + ascii_suffix + nl_suffix] = dump
    return styles


_JSON_STYLES = _styles()
_DEFAULT_STYLE = "compact"


def encode_body(data: bytes) -> StoredBody:
    """The stored form of a whole body."""
    if not data:
        return {}
    text = _utf8(data)
    if text is None:
        return {"base64": base64.b64encode(data).decode("ascii")}
    if text[:1] in "{[" and (parsed := _json_structure(text)) is not None:
        value, style = parsed
        return {"json": value} if style == _DEFAULT_STYLE else {"json": value, "style": style}
    return {"text": text}


def json_style(name: str) -> Callable[[object], str]:
    """The serializer of a stored JSON style (``KeyError`` for an unknown one)."""
    return _JSON_STYLES[name]


def encode_plain(chunk: bytes) -> StoredBody:
    """A chunk as text, or base64 if it is not UTF-8."""
    text = _utf8(chunk)
    if text is None:
        return {"base64": base64.b64encode(chunk).decode("ascii")}
    return {"text": text}


def decode_body(stored: StoredBody) -> bytes:
    """The exact bytes a stored body was made from."""
    if "json" in stored:
        style = _JSON_STYLES[stored.get("style", _DEFAULT_STYLE)]
        return style(stored["json"]).encode()
    if "text" in stored:
        return str(stored["text"]).encode()
    if "base64" in stored:
        return base64.b64decode(stored["base64"])
    if "chunks" in stored:
        return b"".join(decode_chunks(stored["chunks"]))
    return b""


def encode_chunks(chunks: Iterable[bytes]) -> list[StoredBody]:
    """The stored form of a stream: one item per chunk, boundaries kept; an AWS event stream
    (exactly valid frames), one item per message."""
    chunks = list(chunks)
    events = _event_items(chunks)
    if events is not None:
        return events
    stored: list[StoredBody] = []
    for chunk in chunks:
        text = _utf8(chunk)
        if text is None:
            stored.append({"base64": base64.b64encode(chunk).decode("ascii")})
        elif (parsed := _sse_events(text)) is not None:
            events, eol = parsed
            stored.append({"sse": events} if eol == "\n" else {"sse": events, "eol": "crlf"})
        else:
            stored.append({"text": text})
    return stored


def body_problem(stored: object) -> str | None:
    """Why a stored body (read from a file) cannot be decoded, or ``None`` if it can."""
    if not isinstance(stored, dict):
        return "must be a mapping that holds one of json, text, base64, chunks"
    if not stored:
        return None
    if "json" in stored:
        style = stored.get("style", _DEFAULT_STYLE)
        if style not in _JSON_STYLES:
            return f"unknown json style {style!r} (known: {', '.join(_JSON_STYLES)})"
        return None
    if "chunks" in stored:
        chunks = stored["chunks"]
        if not isinstance(chunks, list):
            return "chunks must be a list"
        for number, item in enumerate(chunks, 1):
            problem = _chunk_problem(item)
            if problem:
                return f"chunk {number} {problem}"
        return None
    if "text" in stored or "base64" in stored:
        return _chunk_problem(stored)
    return "must hold one of json, text, base64, chunks"


def _chunk_problem(item: object) -> str | None:
    if not isinstance(item, dict):
        return "must be a mapping"
    if "event" in item:
        return event_problem(item["event"])
    if "sse" in item:
        events = item["sse"]
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return "sse must be a list of events"
        if item.get("eol", "crlf") != "crlf":
            return f"eol must be 'crlf' (or absent for \\n), got {item['eol']!r}"
        return None
    if "text" in item:
        return None if isinstance(item["text"], str) else "text must be a string"
    if "base64" in item:
        try:
            base64.b64decode(item["base64"])  # as decode_chunks reads it
        except (TypeError, ValueError):
            return "base64 is not valid base64"
        return None
    return "must hold one of event, sse, text, base64"


def _event_items(chunks: Sequence[bytes]) -> list[StoredBody] | None:
    """Each message of an AWS event stream, or ``None`` if the chunks are not exactly frames."""
    head = b""
    for chunk in chunks:
        head += chunk[: 12 - len(head)]
        if len(head) == 12:
            break
    if head[:1] != b"\0":
        return None  # a text stream is told apart by its first byte: a frame's length is < 16 MB
    from . import _eventstream  # the AWS codec, loaded by the first event stream

    if not _eventstream.starts_frame(head):
        return None  # nor by its first bytes, without joining it all
    messages = _eventstream.decode(b"".join(chunks))
    if not messages:
        return None
    items: list[StoredBody] = []
    for message in messages:
        headers = _eventstream.headers_text(message.headers)
        if headers is None:
            # Headers the text form cannot give back exactly: the whole frame, as base64.
            frame = _eventstream.encode_one(message)
            items.append({"base64": base64.b64encode(frame).decode("ascii")})
        else:
            items.append({"event": {"headers": headers, **encode_body(message.payload)}})
    return items


def decode_event(stored: StoredBody) -> bytes:
    """The frame of a stored event-stream message; ``ValueError`` says what is wrong."""
    from . import _eventstream

    headers = _eventstream.parse_headers(str(stored.get("headers") or ""))
    payload = {k: v for k, v in stored.items() if k != "headers"}
    problem = body_problem(payload)
    if problem is not None or "chunks" in payload:
        raise ValueError(f"payload {problem or 'cannot be chunks'}")
    try:
        data = decode_body(payload)
    except (TypeError, ValueError):
        raise ValueError("payload base64 is not valid base64") from None
    return _eventstream.encode_one(_eventstream.Message(headers, data))


def event_problem(stored: object) -> str | None:
    """Why a stored event-stream message cannot be framed, or ``None`` if it can."""
    if not isinstance(stored, dict):
        return "event must be a mapping of headers and a payload"
    if not isinstance(stored.get("headers", ""), str):
        return "event headers must be 'name: value' lines"
    try:
        decode_event(stored)
    except ValueError as exc:
        return f"event {exc}"
    return None


def decode_chunks(stored: Sequence[StoredBody]) -> list[bytes]:
    """The exact chunks a stored stream was made from."""
    chunks: list[bytes] = []
    for item in stored:
        if "event" in item:
            chunks.append(decode_event(item["event"]))
        elif "sse" in item:
            eol = "\r\n" if item.get("eol") == "crlf" else "\n"
            chunks.append(_render_sse(item["sse"], eol).encode())
        elif "text" in item:
            chunks.append(str(item["text"]).encode())
        else:
            chunks.append(base64.b64decode(item["base64"]))
    return chunks


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_structure(text: str) -> tuple[object, str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict | list):
        return None
    for name, dump in _JSON_STYLES.items():
        if dump(value) == text:
            if "+ascii" in name and not _encodable(value):
                # Half a surrogate pair, legal as a JSON escape, cannot be written as YAML.
                return None
            return value, name
    return None


def _encodable(value: object) -> bool:
    try:
        _JSON_STYLES[_DEFAULT_STYLE](value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sse_events(text: str) -> tuple[list[dict[str, object]], str] | None:
    """Parse whole SSE events and their line ending (``\n``, or ``\r\n`` as Gemini sends).

    ``None`` unless rendering them back gives ``text`` exactly.
    """
    eol = "\r\n" if "\r\n" in text else "\n"
    if "\r" in text.replace("\r\n", "") or (eol == "\r\n" and "\n" in text.replace("\r\n", "")):
        return None
    end = eol * 2
    if not text.endswith(end):
        return None
    events: list[dict[str, object]] = []
    for block in text[: -len(end)].split(end):
        event: dict[str, object] = {}
        for line in block.split(eol):
            name, sep, value = line.partition(": ")
            if not sep or not name or name in event or ":" in name:
                return None
            event[name] = _sse_data(value) if name == "data" else value
        events.append(event)
    return (events, eol) if _render_sse(events, eol) == text else None


def _sse_data(value: str) -> object:
    if value[:1] in "{[":
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if _JSON_STYLES[_DEFAULT_STYLE](parsed) == value:
            return parsed
    return value


def _render_sse(events: Sequence[dict[str, object]], eol: str = "\n") -> str:
    dump = _JSON_STYLES[_DEFAULT_STYLE]
    parts = []
    for event in events:
        for name, value in event.items():
            parts.append(f"{name}: {value if isinstance(value, str) else dump(value)}{eol}")
        parts.append(eol)
    return "".join(parts)


def decompress(chunks: Sequence[bytes], content_encoding: str) -> list[bytes] | None:
    """Decode ``chunks`` sent with ``content_encoding``, keeping their boundaries.

    Returns ``None`` for an encoding this machine cannot decode; the caller then stores the
    bytes as sent and keeps the header.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    decoded = list(chunks)
    if not any(decoded):
        # An empty body (204, HEAD) decodes to nothing, whatever its encoding says.
        return []
    for coding in reversed(codings):
        step = _decoder(coding)
        if step is None:
            return None
        try:
            decoded = step(decoded)
        except Exception:
            return None
    return decoded


def _decoder(coding: str) -> Callable[[list[bytes]], list[bytes]] | None:
    if coding in ("gzip", "x-gzip"):
        return lambda chunks: _zlib_chunks(chunks, zlib.MAX_WBITS | 16)
    if coding == "deflate":
        return _deflate_chunks
    if coding == "br":
        brotli = _optional("brotli") or _optional("brotlicffi")
        if brotli is None:
            return None
        return lambda chunks: [brotli.decompress(b"".join(chunks))]
    if coding == "zstd":
        zstandard = _optional("zstandard")
        if zstandard is None:
            return None
        return lambda chunks: [
            zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(chunks))
        ]
    return None


def _optional(name: str) -> Any:
    """A decompression library, if this machine has it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _zlib_chunks(chunks: list[bytes], wbits: int) -> list[bytes]:
    decoder = zlib.decompressobj(wbits)
    out = []
    for chunk in chunks:
        parts = []
        while chunk:
            if decoder.eof:
                if not (wbits & 16 and chunk.startswith(b"\x1f\x8b")):
                    break  # trailing bytes after the stream are ignored, as clients do
                # A gzip body may hold several members, which clients decode one after another.
                decoder = zlib.decompressobj(wbits)
            parts.append(decoder.decompress(chunk))
            chunk = decoder.unused_data if decoder.eof else b""
        out.append(b"".join(parts))
    out.append(decoder.flush())
    if not decoder.eof:
        raise zlib.error("truncated compressed body")
    return [c for c in out if c]


def _deflate_chunks(chunks: list[bytes]) -> list[bytes]:
    # "deflate" is zlib-wrapped by the standard, raw deflate in practice; accept both.
    try:
        return _zlib_chunks(chunks, zlib.MAX_WBITS)
    except zlib.error:
        return _zlib_chunks(chunks, -zlib.MAX_WBITS)
