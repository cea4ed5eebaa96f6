"""YAML text for cassettes: stable, readable, fast to read back, and safe to read from anyone.

A cassette may come from an untrusted pull request, so :func:`load` trusts nothing in it: the
safe loader runs no tags, and the loaded data is checked for what our own writer never emits
(shared structure from anchors and aliases, merge keys, nesting past :data:`MAX_DEPTH`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import yaml

from ._cassette import MAX_SIZE  # one limit for every reader

__all__ = ["MAX_DEPTH", "MAX_SIZE", "UnsafeYAML", "YAMLError", "dump", "load"]

YAMLError = yaml.YAMLError

MAX_DEPTH = 100
"""Deepest nesting of mappings and lists a cassette may hold; recorded JSON bodies stay near 20."""


_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CONTAINERS = frozenset({dict, list})
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Where an anchor can start: a node's properties follow a space, a line start or a flow sign.
_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&[^\s\[\]{},]", re.M)


class UnsafeYAML(yaml.MarkedYAMLError):
    """Valid YAML that no cassette holds and that could cost unbounded work to read.

    ``problem`` says what was found; ``problem_mark`` (when known) says where.
    """

    def __init__(self, problem: str, problem_mark: yaml.Mark | None = None) -> None:
        super().__init__(problem=problem, problem_mark=problem_mark)


class _Style:
    """Block style everywhere, multi-line strings as literal blocks, never anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


class _Dumper(_Style, _BaseDumper):  # type: ignore[misc]
    pass


class _PlainDumper(_Style, yaml.SafeDumper):
    """The same, from PyYAML's own emitter, which writes a character past U+FFFF (an emoji)
    as it is: libyaml's escapes it, which turns the whole text holding it into one quoted
    string."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value and len(value) > 1 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_PlainDumper.add_representer(str, _str)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, refusing merge keys and the types our writer never emits."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Merging copies the merged mapping's pairs into each mapping that merges it: nested
        # merges grow exponentially while the nodes are built, before any later check runs.
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise UnsafeYAML(
                    "merge keys (<<) are not allowed in cassettes", key_node.start_mark
                )


def _refused(loader: Any, node: Any) -> object:
    raise UnsafeYAML(
        f"the tag !!{node.tag.rsplit(':', 1)[-1]} is not allowed in cassettes "
        "(pytest-llmcache never writes it)",
        node.start_mark,
    )


_SCALARS: dict[str, Callable[[Any, Any], Any]] = {
    "tag:yaml.org,2002:int": yaml.SafeLoader.construct_yaml_int,
    "tag:yaml.org,2002:float": yaml.SafeLoader.construct_yaml_float,
    "tag:yaml.org,2002:bool": yaml.SafeLoader.construct_yaml_bool,
}


def _scalar(loader: Any, node: Any) -> object:
    """A number or boolean; an explicit tag on text that is none (``!!float abc``) is refused."""
    kind = node.tag.rsplit(":", 1)[-1]
    shown = repr(node.value) if len(node.value) <= 40 else f"{node.value[:40]!r}..."
    try:
        value = _SCALARS[node.tag](loader, node)
    except (ValueError, KeyError, IndexError) as exc:  # ValueError too past 4,300 digits
        raise UnsafeYAML(f"{shown} is not a valid !!{kind}: {exc}", node.start_mark) from None
    if type(value) is int and abs(value) > sys.float_info.max:
        # Durations and TTLs become floats; no recorded body holds a number this large.
        raise UnsafeYAML(f"{shown} is too large a number for a cassette", node.start_mark)
    return value


# Our writer stores only what JSON holds: strings, numbers, booleans, null, mappings and lists.
# Other types would reach code that expects those (JSON encoding at replay, `show`), so they
# are refused here, with their line, instead of failing later without it.
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refused)
for _tag in _SCALARS:
    _Loader.add_constructor(_tag, _scalar)
# A date or time written without quotes (a hand edit) stays the text it is, as JSON would have
# it: a body keeps its string, and ``recorded_at`` is read as ISO 8601 text either way.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def dump(data: object) -> str:
    """Deterministic YAML: insertion order kept, unicode kept, no line folding."""
    text = _dump(data, _Dumper)
    if "\\U" in text and _BaseDumper is not yaml.SafeDumper:
        # libyaml escaped a character past U+FFFF, or the text has "\\U" of its own:
        # written again, slower, by the emitter that keeps such characters as they are.
        # It writes some line breaks YAML knows (U+0085) into blocks as they are, which read
        # back as another: its text is taken only if it reads back the same.
        plain = _dump(data, _PlainDumper)
        try:
            same = load(plain) == data
        except YAMLError:
            same = False
        if same:
            return plain
    return text


def _dump(data: object, dumper: Any) -> str:
    text: str = yaml.dump(
        data,
        Dumper=dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    return text


def load(text: str) -> object:
    """Parse YAML with the safe (C, where available) loader; refuse what no cassette holds.

    Every refusal is a :class:`YAMLError` (:class:`UnsafeYAML` for ours): no tag runs code,
    and reading costs time and memory in proportion to the text.
    """
    if len(text) > MAX_SIZE:
        raise UnsafeYAML(f"{len(text):,} characters, over the limit of {MAX_SIZE:,}")
    try:
        data = yaml.load(text, Loader=_Loader)
    except RecursionError:
        # The pure-Python composer recurses once per level (libyaml stops at 1,000 itself).
        raise UnsafeYAML(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_shape(data, text)
    return data


def _check_shape(data: object, text: str) -> None:
    """Refuse shared containers, aliased strings and deep nesting, in one linear walk.

    Without aliases each container is built once and no string is longer than its source,
    so a repeat, or strings longer in total than the text, can only come from an alias.
    The walk goes one level at a time and stops at the first level with a repeat, so a
    "billion laughs" file costs no more than its text.
    """
    budget = len(text)
    seen: set[int] = set()
    level: list[Any] = [data]
    for depth in range(MAX_DEPTH + 1):
        # type() rather than isinstance: the loader builds only these exact types, and this
        # loop runs once per value of the file.
        containers = [v for v in level if type(v) in _CONTAINERS]
        if not containers:
            return
        if depth == MAX_DEPTH:
            raise UnsafeYAML(f"nested deeper than {MAX_DEPTH} levels")
        ids = set(map(id, containers))
        if len(ids) < len(containers) or not seen.isdisjoint(ids):
            raise _shared(text)
        seen |= ids
        level = []
        for value in containers:
            level.extend(value)
            if type(value) is dict:
                level.extend(value.values())
        budget -= sum(map(len, [v for v in level if type(v) is str]))
        if budget < 0:
            raise _shared(text)


def _shared(text: str) -> UnsafeYAML:
    found = _ANCHOR.search(text)
    mark = None
    if found is not None:
        offset = found.start() if text[found.start()] == "&" else found.start() + 1
        line = text.count("\n", 0, offset)
        mark = yaml.Mark(
            "<cassette>", offset, line, offset - text.rfind("\n", 0, offset) - 1, None, 0
        )
    return UnsafeYAML("anchors and aliases (&name, *name) are not allowed in cassettes", mark)
