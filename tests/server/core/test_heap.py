"""Freed heap memory goes back to the operating system (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graphfuse.server.core.heap import trim_heap

# Arrays under glibc's raised mmap threshold come from the heap; a small live array after each keeps the
# heap from shrinking from its top when they are freed, so only a trim returns their pages.
FRAGMENTED = """
import numpy as np
from graphfuse.server.core.heap import trim_heap
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6
big = np.ones(20_000_000 // 8); del big
blocks, pins = [], []
for _ in range(200):
    blocks.append(np.ones(2_000_000 // 8)); pins.append(np.ones(1000))
blocks.clear()
held = rss(); trim_heap(); print(held, rss())
"""


def test_freed_heap_pages_are_returned_by_a_trim() -> None:
    if not trim_heap():
        pytest.skip("not glibc: nothing to trim")
    out = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, check=True)
    held, trimmed = map(float, out.stdout.split())
    assert held - trimmed > 200  # of the 400 MB freed
