"""YAML text for cassettes: stable, readable, fast to read back, and safe to read from anyone.

A cassette may come from an untrusted pull request, so :func:`load` trusts nothing in it: the
safe loader runs no tags, and the loaded data is checked for what our own writer never emits
(shared structure from anchors and aliases, merge keys, nesting past :data:`MAX_DEPTH`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "MAX_SIZE", "UnsafeYAML", "YAMLError", "dump", "load"]

YAMLError = yaml.YAMLError

MAX_DEPTH = 100
"""Deepest nesting of mappings and lists a cassette may hold; recorded JSON bodies stay near 20."""

MAX_SIZE = 64 * 1024 * 1024
"""Largest cassette read, in bytes: far past any recorded suite, short of exhausting memory."""

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CONTAINERS = frozenset({dict, list, set})
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Where an anchor can start: a node's properties follow a space, a line start or a flow sign.
_ANCHOR = re.compile(r"(?:^|[\s\[{,:])&[^\s\[\]{},]", re.M)


class UnsafeYAML(yaml.MarkedYAMLError):
    """Valid YAML that no cassette holds and that could cost unbounded work to read.

    ``problem`` says what was found; ``problem_mark`` (when known) says where.
    """

    def __init__(self, problem: str, problem_mark: yaml.Mark | None = None) -> None:
        super().__init__(problem=problem, problem_mark=problem_mark)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block style everywhere, multi-line strings as literal blocks, never anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value and len(value) > 1 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, refusing merge keys and reporting bad scalars with their line."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Merging copies the merged mapping's pairs into each mapping that merges it: nested
        # merges grow exponentially while the nodes are built, before any later check runs.
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise UnsafeYAML(
                    "merge keys (<<) are not allowed in cassettes", key_node.start_mark
                )


def _marked(kind: str, construct: Callable[[Any, Any], object]) -> Callable[[Any, Any], object]:
    """``construct``, with the ValueError of an impossible value turned into a marked error."""

    def checked(loader: Any, node: Any) -> object:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as exc:
            problem = f"{node.value[:40]!r} is not a usable {kind}: {exc}"
            raise UnsafeYAML(problem, node.start_mark) from None

    return checked


# An impossible date (2024-02-30) or an integer of more than 4,300 digits raises ValueError.
_Loader.add_constructor(
    "tag:yaml.org,2002:int", _marked("integer", yaml.SafeLoader.construct_yaml_int)
)
_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp", _marked("timestamp", yaml.SafeLoader.construct_yaml_timestamp)
)


def dump(data: object) -> str:
    """Deterministic YAML: insertion order kept, unicode kept, no line folding."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
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
        budget -= sum(map(len, [v for v in level if type(v) is str or type(v) is bytes]))
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
