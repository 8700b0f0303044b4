"""The frame loop shared by ``track`` (videos, cameras, folders) and the ROS bag runs of ``track``/``predict``:
one step per frame, a progress bar, and Ctrl-C (or SIGTERM) ending the loop between frames while keeping
what was done (a camera has no last frame)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from .base import progress_bar


class TrackSteps:
    """``seg.track(rgb, **start)`` on the first frame, ``update`` after; ``close`` ends the track."""

    def __init__(self, seg, **start: Any) -> None:
        self.seg, self.start, self.track = seg, start, None

    def __call__(self, rgb):
        if self.track is None:
            self.track = self.seg.track(rgb, **self.start)
            return self.track.last
        return self.track.update(rgb)

    def close(self) -> None:
        if self.track is not None:
            self.track.close()


def frame_loop(
    items: Iterable[Any],
    step: Callable[[Any], Any],
    on_result: Callable[[Any, Any], None],
    *,
    total: int | None,
    desc: str,
) -> tuple[int, float, bool]:
    """``on_result(item, step(item))`` for each item; returns (frames done, seconds, interrupted).
    A ``KeyboardInterrupt`` before the first frame is re-raised (nothing to keep)."""
    bar, n, interrupted, t_start = progress_bar(total, desc, "frame"), 0, False, time.perf_counter()
    try:
        for item in items:
            res = step(item)
            on_result(item, res)
            n += 1
            if bar is not None:
                bar.update()
            elif n == 1 or n % 30 == 0:
                print(f"frame {n}: {'found' if res.found else 'nothing'}", file=sys.stderr)
    except KeyboardInterrupt:
        if n == 0:
            raise
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    return n, time.perf_counter() - t_start, interrupted
