"""AWS event-stream framing: the binary messages Bedrock streams its answers in.

A message is a 12-byte prelude (total length, headers length, CRC32 of those eight bytes),
the headers, the payload and a CRC32 of everything before it. Each header is a one-byte name
length, the UTF-8 name, a type byte and a value whose encoding the type sets. :func:`decode`
accepts only bytes that :func:`encode` gives back exactly, so a stream stored as messages
replays byte for byte.

Headers read as text, one ``name: value`` line each, the way HTTP shows its own: a string
value as it is, any other type named after the name (``retries (int): 3``), as
:func:`headers_text` writes and :func:`parse_headers` reads.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "HEADER_TYPES",
    "Header",
    "HeaderValue",
    "Message",
    "decode",
    "encode",
    "encode_one",
    "headers_text",
    "parse_headers",
    "starts_frame",
]

HeaderValue = bool | int | bytes | str | uuid.UUID
"""A header's value: ``bool`` for bool, ``int`` for byte to long and timestamp (milliseconds
since the epoch), ``bytes``, ``str`` or :class:`uuid.UUID`."""

HEADER_TYPES = ("bool", "byte", "short", "int", "long", "bytes", "string", "timestamp", "uuid")
"""The value types a header can have, by the names :class:`Header` uses."""

# Wire type bytes: true and false are two types with no value; the rest carry one.
_TRUE, _FALSE, _BYTES, _STRING, _TIMESTAMP, _UUID = 0, 1, 6, 7, 8, 9
_INTS = {"byte": (2, ">b"), "short": (3, ">h"), "int": (4, ">i"), "long": (5, ">q")}
_INT_TYPES = {code: (name, fmt) for name, (code, fmt) in _INTS.items()}
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_I64 = struct.Struct(">q")
_LIMITS = {"byte": 8, "short": 16, "int": 32, "long": 64, "timestamp": 64}


@dataclass(frozen=True, slots=True)
class Header:
    """One header of a message: its name, its type (one of :data:`HEADER_TYPES`), its value."""

    name: str
    type: str
    value: HeaderValue


@dataclass(frozen=True, slots=True)
class Message:
    """One event-stream message: its headers, in wire order, and its payload."""

    headers: tuple[Header, ...]
    payload: bytes


def decode(data: bytes) -> list[Message] | None:
    """The messages ``data`` is made of, or ``None`` unless it is exactly a sequence of valid
    frames (lengths, both CRCs, header types and UTF-8 names and strings all checked)."""
    messages = []
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        message = _decode_frame(view, offset)
        if message is None:
            return None
        messages.append(message[0])
        offset += message[1]
    return messages


def starts_frame(data: bytes) -> bool:
    """Whether ``data`` begins with a frame's prelude (its CRC checked): a cheap first test."""
    return len(data) >= 12 and _U32.unpack_from(data, 8)[0] == zlib.crc32(data[:8])


def encode(messages: Iterable[Message]) -> bytes:
    """The frames of ``messages``, one after another."""
    return b"".join(encode_one(message) for message in messages)


def encode_one(message: Message) -> bytes:
    """The frame of one message; ``ValueError`` for a header that cannot be encoded."""
    headers = b"".join(_encode_header(header) for header in message.headers)
    total = _PRELUDE.size + 4 + len(headers) + len(message.payload) + 4
    prelude = _PRELUDE.pack(total, len(headers))
    frame = b"".join((prelude, _U32.pack(zlib.crc32(prelude)), headers, message.payload))
    return frame + _U32.pack(zlib.crc32(frame))


def _decode_frame(view: memoryview, offset: int) -> tuple[Message, int] | None:
    if len(view) - offset < 16:
        return None
    total, headers_length = _PRELUDE.unpack_from(view, offset)
    if (
        total < 16
        or headers_length > total - 16
        or total > len(view) - offset
        or _U32.unpack_from(view, offset + 8)[0] != zlib.crc32(view[offset : offset + 8])
        or _U32.unpack_from(view, offset + total - 4)[0]
        != zlib.crc32(view[offset : offset + total - 4])
    ):
        return None
    start = offset + 12
    headers = _decode_headers(view[start : start + headers_length])
    if headers is None:
        return None
    payload = bytes(view[start + headers_length : offset + total - 4])
    return Message(headers, payload), total


def _decode_headers(view: memoryview) -> tuple[Header, ...] | None:
    headers = []
    offset = 0
    end = len(view)
    try:
        while offset < end:
            name_length = view[offset]
            name = _utf8(view[offset + 1 : offset + 1 + name_length])
            offset += 1 + name_length
            if name is None or offset >= end:
                return None
            code = view[offset]
            offset += 1
            header, size = _decode_value(view, offset, name, code)
            if header is None or offset + size > end:
                return None
            headers.append(header)
            offset += size
    except (IndexError, struct.error):
        return None
    return tuple(headers)


def _decode_value(view: memoryview, offset: int, name: str, code: int) -> tuple[Header | None, int]:
    if code in (_TRUE, _FALSE):
        return Header(name, "bool", code == _TRUE), 0
    if code in _INT_TYPES:
        kind, fmt = _INT_TYPES[code]
        return Header(name, kind, struct.unpack_from(fmt, view, offset)[0]), struct.calcsize(fmt)
    if code == _TIMESTAMP:
        return Header(name, "timestamp", _I64.unpack_from(view, offset)[0]), 8
    if code == _UUID:
        raw = bytes(view[offset : offset + 16])
        return (Header(name, "uuid", uuid.UUID(bytes=raw)), 16) if len(raw) == 16 else (None, 0)
    if code in (_BYTES, _STRING):
        length = _U16.unpack_from(view, offset)[0]
        raw = bytes(view[offset + 2 : offset + 2 + length])
        if len(raw) != length:
            return None, 0
        if code == _BYTES:
            return Header(name, "bytes", raw), 2 + length
        text = _utf8(raw)
        return (None, 0) if text is None else (Header(name, "string", text), 2 + length)
    return None, 0


def _utf8(data: bytes | memoryview) -> str | None:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _encode_header(header: Header) -> bytes:
    name = header.name.encode("utf-8")
    if len(name) > 255:
        raise ValueError(f"header name {header.name[:40]!r}... is longer than 255 bytes")
    return bytes((len(name),)) + name + _encode_value(header)


def _encode_value(header: Header) -> bytes:
    kind, value = header.type, header.value
    if kind == "bool" and isinstance(value, bool):
        return bytes((_TRUE if value else _FALSE,))
    if kind in _LIMITS and isinstance(value, int) and not isinstance(value, bool):
        bits = _LIMITS[kind]
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"header {header.name!r}: {value} does not fit a {kind}")
        if kind == "timestamp":
            return bytes((_TIMESTAMP,)) + _I64.pack(value)
        code, fmt = _INTS[kind]
        return bytes((code,)) + struct.pack(fmt, value)
    if kind in ("bytes", "string") and isinstance(value, bytes | str):
        raw = value.encode("utf-8") if isinstance(value, str) else value
        if isinstance(value, str) != (kind == "string"):
            raise ValueError(f"header {header.name!r}: a {kind} value must be {kind}")
        if len(raw) > 0xFFFF:
            raise ValueError(f"header {header.name!r}: value longer than 65535 bytes")
        return bytes((_STRING if kind == "string" else _BYTES,)) + _U16.pack(len(raw)) + raw
    if kind == "uuid" and isinstance(value, uuid.UUID):
        return bytes((_UUID,)) + value.bytes
    raise ValueError(f"header {header.name!r}: {value!r} is not a {kind} value")


# -- headers as text ---------------------------------------------------------------------------

_TYPED = re.compile(r"(.*) \((bool|byte|short|int|long|bytes|timestamp|uuid)\)", re.S)


def headers_text(headers: Iterable[Header]) -> str | None:
    """The headers as ``name: value`` lines, or ``None`` if :func:`parse_headers` would not
    read them back exactly (a name holding ``": "`` or a line break, say)."""
    lines = [_header_line(header) for header in headers]
    text = "".join(f"{line}\n" for line in lines)
    try:
        exact = parse_headers(text) == tuple(headers)
    except ValueError:
        exact = False
    return text if exact else None


def _header_line(header: Header) -> str:
    value = header.value
    if header.type == "string" and isinstance(value, str):
        return f"{header.name}: {value}"
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, bytes):
        shown = base64.b64encode(value).decode("ascii")
    else:
        shown = str(value)
    return f"{header.name} ({header.type}): {shown}"


def parse_headers(text: str) -> tuple[Header, ...]:
    """The headers of ``name: value`` lines; ``ValueError`` naming the line that is wrong."""
    headers = []
    for line in text.split("\n"):
        if not line:
            continue
        name, sep, shown = line.partition(": ")
        if not sep:
            raise ValueError(f"header line {line!r} is not 'name: value'")
        typed = _TYPED.fullmatch(name)
        if typed is None:
            headers.append(Header(name, "string", shown))
            continue
        name, kind = typed.groups()
        header = Header(name, kind, _parse_value(kind, shown, line))
        _encode_header(header)  # in range, and a name that fits its length byte
        headers.append(header)
    return tuple(headers)


def _parse_value(kind: str, shown: str, line: str) -> HeaderValue:
    try:
        if kind == "bool":
            if shown not in ("true", "false"):
                raise ValueError
            return shown == "true"
        if kind == "bytes":
            return base64.b64decode(shown, validate=True)
        if kind == "uuid":
            value = uuid.UUID(shown)
            if str(value) != shown:
                raise ValueError
            return value
        if not re.fullmatch(r"-?[0-9]{1,20}", shown):
            raise ValueError
        return int(shown)
    except ValueError:
        raise ValueError(f"header line {line!r}: {shown!r} is not a {kind} value") from None
