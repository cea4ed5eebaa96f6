"""YAML text for cassettes: stable, readable, and fast to read back."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["YAMLError", "dump", "load"]

YAMLError = yaml.YAMLError

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    """Block style everywhere, multi-line strings as literal blocks, never anchors."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value and len(value) > 1 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


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
    """Parse YAML with the safe (C, where available) loader."""
    return yaml.load(text, Loader=_Loader)
