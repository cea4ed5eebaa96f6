"""Putting a method in place of a library's own, and taking it back out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ORIGINAL", "is_swapped", "swap"]

ORIGINAL = "__llm_cache_original__"
"""The attribute on each replacement that holds the method it replaced."""


def is_swapped(function: object, mark: str = ORIGINAL) -> bool:
    """Whether ``function`` is one of our replacements (met again under another name)."""
    return hasattr(function, mark)


def swap(
    replacements: list[tuple[Any, str, Callable[..., Any]]], mark: str = ORIGINAL
) -> Callable[[], None]:
    """Set each ``(owner, name, replacement)``, marked with what it replaces; return the undo."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
    for (owner, name, replacement), (_, _, original) in zip(replacements, originals, strict=True):
        setattr(replacement, mark, original)
        setattr(owner, name, replacement)

    def undo() -> None:
        for owner, name, original in originals:
            setattr(owner, name, original)

    return undo
