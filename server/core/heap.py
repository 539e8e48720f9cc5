"""Handing freed heap memory back to the operating system after big, short-lived allocations.

Loading or merging a graph allocates arrays several times its size for a few seconds. glibc keeps what is
freed for later allocations (its mmap threshold rises after large frees, so later large arrays come from
the heap), and the server's resident memory stays at the peak; ``malloc_trim`` returns the free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def trim_heap() -> bool:
    """Return free heap pages to the operating system; whether the C library could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
