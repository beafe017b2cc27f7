"""Durable file writes shared by every module that keeps state on disk."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FolderInUse", "atomic_write", "exclusive_folder", "fsync_directory"]

LOCK_NAME = ".canarywatch.lock"


class FolderInUse(RuntimeError):
    """Another canarywatch process holds the state folder."""


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so a reader or a crash sees the old file or the new one.

    The temporary sibling is created with `mode` (0600 by default: incident state,
    evidence and outboxes are sensitive), synced, renamed over `path`, and the rename
    is synced too. Raises OSError; nothing is left behind on failure.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: not every filesystem can)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_folder(folder: Path) -> Iterator[None]:
    """Hold `folder` (created if missing) for this process alone, or raise FolderInUse.

    A `run` and a `resume` on the same ``--out`` would each read the incident journal and
    kill-switch state, then write over the other's. ``flock`` is released by the kernel
    when the holder dies, even by SIGKILL, so a crashed run never leaves the folder
    locked; the holder's pid is written into the lock file for the error message.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise FolderInUse(f"{folder} is in use by another canarywatch process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
