"""An inter-process lock per cassette, so xdist workers sharing a file take turns writing it.

Lock files live outside the repository (nothing to ignore, nothing to commit by mistake), in
a folder of the user's own in the temporary folder: another user's folder of the same name
is never used. A lock file is removed by whoever releases it, so they never pile up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LockError", "cassette_lock", "lock_dir"]


class LockError(Exception):
    """The lock of a cassette cannot be taken; the message says why and where."""


def _user() -> str:
    getuid = getattr(os, "getuid", None)
    if getuid is not None:
        return str(getuid())
    import getpass

    return getpass.getuser()


def lock_dir() -> Path:
    """The user's lock folder, made private on first use; refused if someone else owns it."""
    folder = Path(tempfile.gettempdir()) / f"pytest-llmcache-{_user()}"
    if folder in _checked:
        return folder
    try:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = folder.lstat()
    except OSError as exc:
        raise LockError(
            f"cannot create the lock folder {folder}: {exc.strerror or exc} "
            "(set TMPDIR to a folder you can write)"
        ) from None
    getuid = getattr(os, "getuid", None)
    if not stat.S_ISDIR(info.st_mode) or (getuid is not None and info.st_uid != getuid()):
        raise LockError(
            f"the lock folder {folder} is not a folder of yours; remove it, or set TMPDIR "
            "to a folder of your own"
        )
    _checked.add(folder)
    return folder


_checked: set[Path] = set()


def _name(path: Path) -> str:
    # Absolute without resolving symlinks: no disk access, and one file is one name.
    return hashlib.sha1(os.path.abspath(path).encode(), usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def cassette_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the cassette itself is never opened here)."""
    lock_file = lock_dir() / f"{_name(path)}.lock"
    fd = _acquire(lock_file)
    try:
        yield
    finally:
        _release(lock_file, fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _acquire(lock_file: Path) -> int:
        fd = _open(lock_file)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return fd
            except OSError:
                time.sleep(0.01)

    def _release(lock_file: Path, fd: int) -> None:
        # An open file cannot be removed here: the (empty) lock file stays.
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)

else:
    import fcntl

    def _acquire(lock_file: Path) -> int:
        while True:
            fd = _open(lock_file)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The holder before us may have removed the file after we opened it: a lock on
            # a removed file locks nothing, so start again with the file now in place.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _release(lock_file: Path, fd: int) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_file)
        finally:
            os.close(fd)  # closing releases the lock


def _open(lock_file: Path) -> int:
    try:
        return os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise LockError(f"cannot open the lock file {lock_file}: {exc.strerror or exc}") from None
