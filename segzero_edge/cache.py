"""A small thread-safe LRU cache whose misses are computed once, even under concurrency.

The Segmenter keys per-frame work (SAM2 image features, vision embeddings) by image content: several
questions about the same frame reuse it, and threads asking for the same frame at the same time wait
for one computation instead of running it several times.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class LRUCache(Generic[V]):
    """Least-recently-used cache with at most ``maxsize`` entries (0 disables caching).

    ``hits`` and ``misses`` count lookups; a miss is a computation that actually ran.
    """

    def __init__(self, maxsize: int = 4) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0, got {maxsize}")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._pending: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> tuple[V, bool]:
        """The value for ``key``, computing it with ``compute()`` on a miss.

        Returns:
            ``(value, hit)`` where ``hit`` is True when no computation ran for this call.
        """
        if self.maxsize == 0:
            with self._lock:
                self.misses += 1
            return compute(), False
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key], True
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = Future()
                self._pending[key] = future
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return future.result(), True
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        future.set_result(value)
        return value, False

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)
