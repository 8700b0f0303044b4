"""``FrameCache``: one entry per frame holding every stage's work, each computed once."""

import threading
import time

import pytest

from segzero_edge.errors import InputError
from segzero_edge.frame import FrameCache


def test_lru_eviction_and_counts_per_frame_and_stage():
    cache = FrameCache(2)
    calls = []

    def make(key, stage):
        return lambda: calls.append((key, stage)) or f"{key}-{stage}"

    assert cache.get_or_compute(1, "sam2", make(1, "sam2")) == ("1-sam2", False)
    assert cache.get_or_compute(1, "vision", make(1, "vision")) == ("1-vision", False)  # same frame, other stage
    assert cache.get_or_compute(2, "sam2", make(2, "sam2")) == ("2-sam2", False)
    assert cache.get_or_compute(1, "sam2", make(1, "sam2")) == ("1-sam2", True)  # 1 is now most recent
    assert cache.get_or_compute(3, "sam2", make(3, "sam2")) == ("3-sam2", False)  # evicts frame 2
    assert cache.get_or_compute(2, "sam2", make(2, "sam2")) == ("2-sam2", False)  # evicts frame 1, both stages
    assert cache.get_or_compute(1, "vision", make(1, "vision")) == ("1-vision", False)
    assert calls == [(1, "sam2"), (1, "vision"), (2, "sam2"), (3, "sam2"), (2, "sam2"), (1, "vision")]
    assert (cache.hits, cache.misses, len(cache)) == (1, 6, 2)


def test_concurrent_misses_compute_once():
    cache = FrameCache(4)
    runs = []
    barrier = threading.Barrier(4)

    def compute():
        runs.append(1)
        time.sleep(0.2)
        return "features"

    results = []

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute("frame", "sam2", compute))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs) == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True]
    assert all(v == "features" for v, _ in results)


def test_failed_computation_is_not_cached_and_propagates_to_waiters():
    cache = FrameCache(2)
    started, release = threading.Event(), threading.Event()

    def boom():
        started.set()
        release.wait(5)
        raise RuntimeError("encoder failed")

    errors = []
    owner = threading.Thread(target=lambda: errors.append(_raises(lambda: cache.get_or_compute("k", "sam2", boom))))
    owner.start()
    started.wait(5)
    waiter = threading.Thread(
        target=lambda: errors.append(_raises(lambda: cache.get_or_compute("k", "sam2", lambda: "never")))
    )
    waiter.start()
    time.sleep(0.1)
    release.set()
    owner.join()
    waiter.join()
    assert errors == ["encoder failed", "encoder failed"]
    assert cache.get_or_compute("k", "sam2", lambda: 5) == (5, False)


def _raises(fn) -> str | None:
    try:
        fn()
    except RuntimeError as exc:
        return str(exc)
    return None


def test_disabled_cache_always_computes():
    cache = FrameCache(0)
    assert cache.get_or_compute("k", "sam2", lambda: 1) == (1, False)
    assert cache.get_or_compute("k", "sam2", lambda: 2) == (2, False)
    for bad in (-1, 1.5, True):
        with pytest.raises(InputError, match="cache_size"):
            FrameCache(bad)
