"""An inter-process lock per cassette, so xdist workers sharing a file take turns writing it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cassette_lock", "first_claim", "forget_run"]

# Lock files live outside the repository: nothing to ignore, nothing to commit by mistake.
_LOCK_DIR = Path(tempfile.gettempdir()) / "pytest-llmcache-locks"


def _name(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def cassette_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the cassette itself is never opened here)."""
    _LOCK_DIR.mkdir(exist_ok=True)
    fd = os.open(_LOCK_DIR / f"{_name(path)}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


def first_claim(path: Path, run_id: str) -> bool:
    """True for the first process of run ``run_id`` to ask about ``path``, False after.

    Every xdist worker of one run shares the run id, so a ``record`` run starts each
    cassette afresh exactly once, however many workers write to it.
    """
    run_dir = _LOCK_DIR / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(run_dir / _name(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def forget_run(run_id: str) -> None:
    """Remove what :func:`first_claim` kept for a finished run."""
    shutil.rmtree(_LOCK_DIR / f"run-{run_id}", ignore_errors=True)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _acquire(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.01)

    def _release(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _acquire(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
