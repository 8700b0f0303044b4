"""Giving memory back between export phases.

Freed tensors go back to glibc's heap, not to the operating system, so a process that loads the vision
tower, then a full fp32 model, then ONNX Runtime sessions would keep the high-water mark of all of them.
``release_memory`` collects garbage and asks glibc to return free heap pages (``malloc_trim``), so each
phase's peak is its own (measured by ``benchmarks/bench_export_memory.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


def release_memory() -> None:
    """``gc.collect()`` and, on glibc, ``malloc_trim(0)``."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
