"""Keep freed memory in the process: glibc otherwise unmaps every large freed block and faults fresh pages in
on the next allocation of that size.

Propagation allocates a few (rows, batch) blocks of 5-30 MB per hop and frees them at once. With glibc's
defaults each of them is a new mmap whose pages fault in on first touch: on MetaQA's graph (267k directed
edges) a sparse product over 32 questions took 8.4 ms, against 1.9 ms with the blocks reused. Every
`graphfuse` command calls this, and so do the benches that time propagation. PyTorch's CPU inference guides
reach the same end by preloading jemalloc or tcmalloc; this needs no preload.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Serve allocations below ``mmap_threshold`` bytes from the heap, and return freed heap memory to the
    OS only beyond ``trim_threshold``; True when the C library took the settings (glibc), False elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.debug("no mallopt in this C library: allocator left as it is")
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
