"""Whether a database was left by a clean close, so that opening it can skip the full integrity check.

``PRAGMA quick_check`` reads every page: seconds per GB, most of a restart's time on a large store when its
pages are not cached. A store closed cleanly, as the last connection (its WAL checkpointed away), leaves a
marker beside the database with the file's identity: size, inode and a modification time the close sets
itself, a second back with random nanoseconds, so that any later write (which stamps the current time) no
longer matches. Opening takes the marker away: a crash after it leaves none, and the next open checks the
whole file, as after a copy, a restore or any write by another program.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

SUFFIX = ".clean"


def _wal_empty(db_path: Path) -> bool:
    wal = db_path.with_name(db_path.name + "-wal")
    return not wal.exists() or wal.stat().st_size == 0


def _identity(db_path: Path) -> dict:
    stat = db_path.stat()
    return {"size": stat.st_size, "inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns}


def mark(db_path: Path) -> None:
    """Record that ``db_path`` was just closed cleanly (nothing when another connection keeps a WAL)."""
    marker = db_path.with_name(db_path.name + SUFFIX)
    try:
        if not db_path.exists() or not _wal_empty(db_path):
            return
        stamp = time.time_ns() - 10**9 - secrets.randbelow(10**9)
        os.utime(db_path, ns=(db_path.stat().st_atime_ns, stamp))
        partial = marker.with_name(f"{marker.name}.{os.getpid()}")
        partial.write_text(json.dumps(_identity(db_path)))
        os.replace(partial, marker)
    except OSError:
        marker.unlink(missing_ok=True)  # no marker: the next open checks


def take(db_path: Path) -> bool:
    """Whether ``db_path`` is unchanged since a clean close; the marker is removed either way."""
    marker = db_path.with_name(db_path.name + SUFFIX)
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    try:
        marker.unlink()
        return _wal_empty(db_path) and db_path.exists() and recorded == _identity(db_path)
    except OSError:
        return False
