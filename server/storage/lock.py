"""One process at a time writes a data directory's graphs: a running server, or an offline bulk load.

The holder keeps an exclusive ``flock`` on ``DATA_DIR/graphfuse.lock`` until it exits (the kernel drops it
when the process dies, so a crashed holder never leaves the directory locked).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["DataDirLock", "DataDirLocked"]

LOCK_FILENAME = "graphfuse.lock"


class DataDirLocked(RuntimeError):
    """Another process holds the data directory."""


class DataDirLock:
    """``with DataDirLock(data_dir, holder):`` holds the directory, or raises :class:`DataDirLocked`
    naming the process that does."""

    def __init__(self, data_dir: str | Path, holder: str) -> None:
        self.path = Path(data_dir) / LOCK_FILENAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirLocked(f"{self.path.parent} is in use by {owner}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.holder} (pid {os.getpid()})".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
