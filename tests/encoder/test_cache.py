import threading

import pytest

from graphfuse.encoder import EmbeddingCache


def test_get_and_put_count_hits_and_misses():
    cache = EmbeddingCache(4)
    assert cache.get("a") is None
    cache.put("a", 1)
    assert cache.get("a") == 1
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_evicts_least_recently_used():
    cache = EmbeddingCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a is now the most recently used; b the least
    cache.put("d", "D")
    assert cache.get("b") is None
    assert [cache.get(key) for key in "acd"] == ["A", "C", "D"]
    cache.put("c", "C2")  # overwriting refreshes c; a is now the least recently used
    cache.put("e", "E")
    assert cache.get("a") is None
    assert [cache.get(key) for key in "cde"] == ["C2", "D", "E"]


def test_size_is_bounded():
    cache = EmbeddingCache(10)
    for i in range(100):
        cache.put(i, i)
    assert len(cache) == 10
    assert [cache.get(i) for i in range(90, 100)] == list(range(90, 100))
    assert cache.get(89) is None


def test_zero_entries_stores_nothing():
    cache = EmbeddingCache(0)
    cache.put("a", 1)
    assert len(cache) == 0
    assert cache.get("a") is None


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddingCache(-1)
    with pytest.raises(ValueError, match="None"):
        EmbeddingCache(1).put("a", None)


def test_clear_resets_entries_and_counters():
    cache = EmbeddingCache(2)
    cache.put("a", 1)
    cache.get("a")
    cache.get("b")
    cache.clear()
    assert (len(cache), cache.hits, cache.misses) == (0, 0, 0)


def test_threads_keep_counters_and_bound_consistent():
    cache = EmbeddingCache(50)
    calls_per_thread = 2000

    def work(seed: int) -> None:
        for i in range(calls_per_thread):
            key = (seed * 7 + i) % 80
            if cache.get(key) is None:
                cache.put(key, key)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.hits + cache.misses == 8 * calls_per_thread
    assert len(cache) == 50
    assert all(cache.get(key) in (None, key) for key in range(80))
