"""A thread-safe, bounded LRU cache for embeddings."""

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class EmbeddingCache:
    """Least-recently-used cache holding at most `max_entries` values.

    `get` marks an entry as recently used; `put` on a full cache evicts the least recently used one.
    `max_entries=0` gives a cache that stores nothing. Every method holds one lock, so the cache can
    be shared between threads.

    Args:
        max_entries: how many entries to keep (>= 0).
    """

    def __init__(self, max_entries: int):
        if max_entries < 0:
            raise ValueError(f"Expected 'max_entries' >= 0 (got {max_entries})")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The value stored under `key`, or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if value is None:
            raise ValueError("Expected a value (got None, which 'get' uses to mean a miss)")
        if self.max_entries == 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._hits = self._misses = 0

    @property
    def hits(self) -> int:
        return self._hits

    @property
    def misses(self) -> int:
        return self._misses

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(entries={len(self)}/{self.max_entries}, "
            f"hits={self.hits}, misses={self.misses})"
        )
