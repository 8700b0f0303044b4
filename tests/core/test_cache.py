import threading
import time

import pytest

from segzero_edge.cache import LRUCache


def test_lru_eviction_and_counts():
    cache: LRUCache[int] = LRUCache(2)
    calls = []

    def make(k):
        return lambda: calls.append(k) or k * 10

    assert cache.get_or_compute(1, make(1)) == (10, False)
    assert cache.get_or_compute(2, make(2)) == (20, False)
    assert cache.get_or_compute(1, make(1)) == (10, True)  # 1 is now most recent
    assert cache.get_or_compute(3, make(3)) == (30, False)  # evicts 2
    assert cache.get_or_compute(2, make(2)) == (20, False)
    assert calls == [1, 2, 3, 2]
    assert (cache.hits, cache.misses, len(cache)) == (1, 4, 2)


def test_concurrent_misses_compute_once():
    cache: LRUCache[str] = LRUCache(4)
    runs = []
    barrier = threading.Barrier(4)

    def compute():
        runs.append(1)
        time.sleep(0.2)
        return "features"

    results = []

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute("frame", compute))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True]
    assert all(v == "features" for v, _ in results)


def test_failed_computation_is_not_cached_and_propagates():
    cache: LRUCache[int] = LRUCache(2)

    def boom():
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError, match="encoder failed"):
        cache.get_or_compute("k", boom)
    assert cache.get_or_compute("k", lambda: 5) == (5, False)


def test_disabled_cache_always_computes():
    cache: LRUCache[int] = LRUCache(0)
    assert cache.get_or_compute("k", lambda: 1) == (1, False)
    assert cache.get_or_compute("k", lambda: 2) == (2, False)
    with pytest.raises(ValueError):
        LRUCache(-1)
