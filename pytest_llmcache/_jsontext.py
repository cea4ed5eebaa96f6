"""JSON text read and written by the standard library's C coders, each made once.

``json.loads`` and ``JSONEncoder.encode`` set up their coder on every call, which costs as
much as a small document: replay reads and writes one or two per call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["encoder", "parse", "scan", "scanner"]


def encoder(options: json.JSONEncoder) -> Callable[[object], str]:
    """``options.encode``, or the same text from a C encoder made once.

    Made without the circular-reference check: every value given is a tree (parsed from
    JSON, or from YAML that refuses shared structure). Without the C encoder, or for
    indented JSON (which it does not write before Python 3.13), ``options.encode`` itself.
    """
    return _encoder(options, getattr(json.encoder, "c_make_encoder", None))


def _encoder(options: json.JSONEncoder, make: Any) -> Callable[[object], str]:
    if make is None or options.indent is not None:
        return options.encode
    strings = (
        json.encoder.encode_basestring_ascii
        if options.ensure_ascii
        else json.encoder.encode_basestring
    )
    encode = make(
        None,
        options.default,
        strings,
        None,
        options.key_separator,
        options.item_separator,
        options.sort_keys,
        options.skipkeys,
        options.allow_nan,
    )
    join = "".join

    def text(data: object) -> str:
        return join(encode(data, 0))

    return text


def scanner(decoder: json.JSONDecoder) -> Callable[[str, int], tuple[Any, int]]:
    """What ``decoder`` reads a value with at an index: ``(value, end)``, or
    ``StopIteration`` when no value starts there (an attribute every decoder sets, not in
    its stubs)."""
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]
    return scan


scan = scanner(json.JSONDecoder())
"""What ``json.loads`` reads a value with, at an index of a text: ``(value, end)``."""


def parse(text: str) -> Any:
    """``json.loads(text)``, with the same value and the same errors, in fewer steps.

    A document that starts with its first bracket and ends with at most a line break (as
    every stored one does) is read by the scanner directly, which raises what
    ``json.loads`` raises; any other text goes to ``json.loads``.
    """
    if text[:1] in ("{", "["):
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return json.loads(text)  # for its message
        if end == len(text) or (end == len(text) - 1 and text[end] == "\n"):
            return value
    return json.loads(text)
