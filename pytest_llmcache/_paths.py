"""Where a test's cassette lives (SPEC §2)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

__all__ = ["cassette_file", "cassette_folder", "safe_name"]

_UNSAFE = re.compile(r"[^\w.\-\[\]=+,@]")
_MAX_NAME = 120


def safe_name(name: str) -> str:
    """A file-name-safe form of a test name; over-long names end in a short hash."""
    cleaned = _UNSAFE.sub("-", name).strip(".") or "-"
    if len(cleaned) > _MAX_NAME:
        digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:10]
        cleaned = f"{cleaned[: _MAX_NAME - 11]}-{digest}"
    return cleaned


@functools.lru_cache(maxsize=1024)
def cassette_folder(test_file: Path, cassette_dir: Path | None, rootpath: Path) -> str:
    """The folder of a test file's cassettes (worked out once per file)."""
    module = test_file.stem
    if cassette_dir is None:
        return str(test_file.parent / "cassettes" / module)
    try:
        relative = test_file.parent.resolve().relative_to(rootpath.resolve())
    except ValueError:
        relative = Path()
    return str(cassette_dir / relative / module)


def cassette_file(
    *,
    test_file: Path,
    nodeid: str,
    shared_name: str | None,
    cassette_dir: Path | None,
    rootpath: Path,
) -> str:
    """``<test folder>/cassettes/<module>/<Class.test[id]>.yaml``, or the shared name's file.

    With ``llm_cache_dir`` set the root moves there, keeping the test file's folder relative
    to the rootdir so two modules of the same name never share a folder.

    The name is made as a string, as a ``Path`` would write it: every cached test needs one,
    and most need nothing else of it.
    """
    folder = cassette_folder(test_file, cassette_dir, rootpath)
    if shared_name is None:
        # The node id after the file part: "Class::test[param]" -> "Class.test[param]".
        test_part = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
        name = safe_name(test_part.replace("::", "."))
    else:
        name = str(Path(shared_name))  # as a Path gives it ("a//b" -> "a/b")
    return f"{folder}{os.sep}{name}.yaml"
