"""``Track``: reason once, track every frame, re-reason when the track is lost.

    track = seg.track(frame0, "the cup the robot should pick up")   # or box=..., points=..., or mask=...
    for frame in camera:
        res = track.update(frame)       # Segmentation: res.objects[i].mask / .lost, res.timings_ms
    track.reason_again()                # a new answer from the reasoner, computed in the background

Each ``update`` runs SAM2's video step on the frame (``TrackerPipeline.track_step``) against a fixed-size
memory (``MemoryBank``), so memory and time per frame do not grow with the stream. When every object has
been lost (SAM2's object score <= 0) for ``reason_after_lost`` frames in a row, or on ``reason_again()``,
the reasoner runs on that frame on a background thread while ``update`` keeps tracking; when its answer is
ready, the next ``update`` prompts the memory with it *on the frame it was computed on* (whose features are
kept) and then tracks the new frame from there. Results therefore come back in frame order, one per
``update`` call, and an answer is never applied to a frame it was not computed on.

Threads: ``update`` is meant for one camera loop; concurrent calls are serialised by a lock (they never
interleave). ``reason_again`` and ``close`` may be called from any thread. The background reasoning uses
the ``Segmenter``'s reasoner, whose generations are serialised with ``predict``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..frame import Color, ImageLike, load_image
from ..sam2 import Sam2Features
from ..sam2.host import mask_box
from ..types import Answer, ObjectMask, Segmentation
from .bank import MemoryBank
from .pipeline import StepOutput, TrackerPipeline
from .prompts import answer_error, answer_prompts, check_boxes, check_masks

log = logging.getLogger(__name__)

#: ``reason(rgb)`` -> the answer and, from engines that segment by themselves (LENS), its masks ``[N, H, W]``
#: bool that start the track (else None: the answer's boxes and points start it).
Reason = Callable[[np.ndarray], tuple[Answer, np.ndarray | None]]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


@dataclass(frozen=True, eq=False)
class _Pending:
    """A reasoning started on frame ``frame`` (its features kept to prompt the memory there)."""

    future: Future
    frame: int
    features: Sam2Features


class Track:
    """A running track over frames of one size (made by ``Segmenter.track``).

    Attributes:
        size: ``(W, H)`` of the track's frames.
        frame_index: index the next ``update`` frame gets (the first frame is 0).
        last: the latest ``Segmentation`` (the first frame's right after ``Segmenter.track``).
        reason_after_lost: frames with every object lost before the reasoner runs again (0: never).
    """

    def __init__(
        self,
        tracker: TrackerPipeline,
        size: tuple[int, int],
        *,
        reason: Reason | None,
        reason_after_lost: int,
        color: Color = "rgb",
    ) -> None:
        if isinstance(reason_after_lost, bool) or not isinstance(reason_after_lost, int) or reason_after_lost < 0:
            raise InputError(f"reason_after_lost must be an int >= 0, got {reason_after_lost!r}")
        self._tracker = tracker
        self.size = size
        self.reason_after_lost = reason_after_lost
        self._color = color
        self._reason = reason
        self._bank: MemoryBank | None = None
        self._pending: _Pending | None = None
        self._want_reason = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segzero-reason") if reason else None
        self._lost_run = 0
        self._closed = False
        self.frame_index = 0
        self.last: Segmentation | None = None

    # -- public --------------------------------------------------------------------------------------
    @property
    def num_objects(self) -> int:
        """Objects in the track (0 until a first answer or prompt gave some)."""
        return self._bank.n if self._bank is not None else 0

    @property
    def reasoning(self) -> bool:
        """True while a background reasoning is running or waiting to be applied."""
        return self._pending is not None

    def reason_again(self) -> None:
        """Ask the reasoner for a new answer; it runs on the next ``update``'s frame, in the background."""
        if self._reason is None:
            raise InputError(
                "this track was started from a box/points, so there is no instruction to reason about again",
                hint="start it with seg.track(frame, 'text') to re-reason, or start a new track with new prompts",
            )
        self._want_reason.set()

    def wait_for_reasoning(self, timeout: float | None = None) -> bool:
        """Block until the background reasoning in flight (if any) has finished; its answer is applied by
        the next ``update``. Returns False when ``timeout`` seconds passed first. For offline runs that must
        not depend on the machine's speed (a camera loop never waits)."""
        pending = self._pending
        if pending is None:
            return True
        done, _ = wait([pending.future], timeout=timeout)
        return bool(done)

    def update(self, frame: ImageLike) -> Segmentation:
        """Track the objects into the next frame.

        Args:
            frame: a path, PIL image or ``(H, W, 3)`` uint8 array (BGR if the track was made with
                ``color="bgr"``) of the track's size.

        Returns:
            ``Segmentation`` with one ``ObjectMask`` per object, ``lost`` and per-stage ``timings_ms``.

        Raises:
            InputError: a frame of another size, an empty or unreadable frame, a closed track.
        """
        with self._lock:
            if self._closed:
                raise InputError("update() on a closed track", hint="start a new track with seg.track(...)")
            t0 = time.perf_counter()
            rgb = self._load(frame)
            feats = self._tracker.encode(rgb)
            return self._step(rgb, feats, t0)

    def close(self) -> None:
        """Stop the background reasoning thread (a running generation finishes on its own)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Track:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------
    def _load(self, frame: ImageLike) -> np.ndarray:
        rgb = load_image(frame, color=self._color)
        size = (rgb.shape[1], rgb.shape[0])
        if size != self.size:
            raise InputError(
                f"frame {self.frame_index} is {size[0]}x{size[1]}, "
                f"this track's frames are {self.size[0]}x{self.size[1]}",
                hint="give every frame of a track the same size (start a new track for another camera or size)",
            )
        return rgb

    def start(
        self,
        rgb: np.ndarray,
        feats: Sam2Features,
        t0: float,
        *,
        prompts: dict[str, Any] | None,
        answer=None,
        masks=None,
    ):
        """The first frame: prompt it (``prompts``: box/points/labels, or mask), or wait for an answer (None;
        ``answer``/``masks`` are the reasoner's, for the error message)."""
        with self._lock:
            if prompts is None:  # the reasoner found nothing usable: re-reason from the next frame on
                self._lost_run = self.reason_after_lost
                return self._finish(None, 0, t0, {}, answer=answer, error=answer_error(answer, masks))
            step = self._prompt(feats, prompts)
            self._bank = self._tracker.new_bank(len(step.scores))
            self._bank.reset(0, step.maskmem, step.obj_ptr)
            return self._finish(step, 0, t0, {**feats.timings_ms, **step.timings_ms}, answer=answer)

    def _prompt(self, feats: Sam2Features, prompts: dict[str, Any]) -> StepOutput:
        if "mask" in prompts:
            return self._tracker.mask_step(feats, prompts["mask"])
        return self._tracker.prompt_step(feats, **prompts)

    def _step(self, rgb: np.ndarray, feats: Sam2Features, t0: float) -> Segmentation:
        t = self.frame_index
        extra: dict[str, float] = dict(feats.timings_ms)
        answer = self._apply_answer(extra)
        if self._bank is None:
            result = self._finish(None, t, t0, extra, answer=answer, error="waiting for the reasoner's answer")
        else:
            step = self._tracker.track_step(feats, self._bank, t)
            self._bank.add(t, step.maskmem, step.obj_ptr)
            result = self._finish(step, t, t0, {**extra, **step.timings_ms}, answer=answer)
        self._maybe_reason(rgb, feats, t)
        return result

    def _apply_answer(self, timings: dict[str, float]) -> Answer | None:
        """Prompt the memory with a finished background answer, on the frame it was computed on."""
        pending = self._pending
        if pending is None or not pending.future.done():
            return None
        self._pending = None
        try:
            answer, masks = pending.future.result()
        except Exception as exc:  # the reasoner failed: keep tracking, say so, try again later
            log.warning("re-reasoning on frame %d failed: %s", pending.frame, exc)
            return None
        prompts = answer_prompts(answer, self.size, masks, self._tracker.settings.image_size)
        if prompts is None:
            error = answer_error(answer, masks)
            log.info("re-reasoning on frame %d found nothing usable (%s)", pending.frame, error)
            return answer
        t0 = time.perf_counter()
        step = self._prompt(pending.features, prompts)
        bank = self._tracker.new_bank(len(step.scores)) if self._bank is None else self._bank
        if bank.n != len(step.scores):
            bank = self._tracker.new_bank(len(step.scores))
        bank.reset(pending.frame, step.maskmem, step.obj_ptr)
        self._bank = bank
        self._lost_run = 0
        timings["reprompt"] = _ms(t0)
        log.info("re-prompted the track on frame %d with the reasoner's answer", pending.frame)
        return answer

    def _maybe_reason(self, rgb: np.ndarray, feats: Sam2Features, t: int) -> None:
        if self._reason is None or self._pending is not None:
            return
        waiting = self._bank is None  # no usable answer yet: keep asking
        due = waiting or (self.reason_after_lost > 0 and self._lost_run >= self.reason_after_lost)
        if not (due or self._want_reason.is_set()):
            return
        self._want_reason.clear()
        self._lost_run = 0
        future = self._pool.submit(self._reason, rgb.copy())
        self._pending = _Pending(future, t, feats)
        log.info("reasoning again on frame %d in the background", t)

    def _finish(self, step: StepOutput | None, t: int, t0: float, timings, *, answer=None, error=None):
        t1 = time.perf_counter()
        w, h = self.size
        objects: list[ObjectMask] = []
        if step is not None:
            masks = self._tracker.masks(step, self.size)
            for i, mask in enumerate(masks):
                present = bool(step.object_scores[i] > 0) and bool(mask.any())
                objects.append(
                    ObjectMask(
                        mask=mask,
                        box=mask_box(mask),
                        score=float(step.scores[i]),
                        object_score=float(step.object_scores[i]),
                        lost=not present,
                    )
                )
        union = np.zeros((h, w), dtype=bool)
        for obj in objects:
            union |= obj.mask
        lost = not any(not o.lost for o in objects)
        self._lost_run = self._lost_run + 1 if lost else 0
        found = bool(union.any())
        if not found and error is None:
            error = f"the tracked object is not visible in frame {t} (SAM2's object score <= 0 or an empty mask)"
        first = objects[0] if objects else None
        timings = {**timings, "postprocess": _ms(t1), "total": _ms(t0)}
        result = Segmentation(
            mask=union,
            found=found,
            box=first.box if first else None,
            score=first.score if first else 0.0,
            reasoning=answer.think if answer is not None else None,
            raw_text=answer.raw_text if answer is not None else "",
            timings_ms=timings,
            answer=answer,
            error=None if found else error,
            objects=tuple(objects),
            lost=lost,
            frame_index=t,
        )
        self.frame_index = t + 1
        self.last = result
        return result


def start_track(
    tracker: TrackerPipeline,
    image: ImageLike,
    *,
    reason: Reason | None,
    prompts: dict[str, Any] | None,
    reason_after_lost: int,
    color: Color = "rgb",
) -> Track:
    """A ``Track`` started on ``image``: from ``prompts`` (``box``/``points``/``labels`` in its pixels, or
    ``mask``: ``(H, W)`` or ``[N, H, W]`` bool at its size), or from ``reason(rgb)``'s answer when ``prompts``
    is None (``Segmenter.track`` calls this).

    Raises:
        InputError: labels without points, a box with no area inside the frame, a mask of another size or
            with no pixel set, a mask together with a box or points, bad prompts or image.
    """
    t0 = time.perf_counter()
    rgb = load_image(image, color=color)
    size = (rgb.shape[1], rgb.shape[0])
    if prompts is not None:
        prompts = {k: v for k, v in prompts.items() if v is not None}
        if "labels" in prompts and "points" not in prompts:
            raise InputError("labels without points", hint="give labels together with the points they label")
        if "mask" in prompts:
            if len(prompts) > 1:
                raise InputError("give either a mask or box/points prompts, not both")
            prompts["mask"] = check_masks(prompts["mask"], size, tracker.settings.image_size)
        check_boxes(prompts.get("box"), size)
    track = Track(tracker, size, reason=reason, reason_after_lost=reason_after_lost, color=color)
    feats = tracker.encode(rgb)
    answer = masks = None
    if prompts is None:
        answer, masks = reason(rgb)
        prompts = answer_prompts(answer, size, masks, tracker.settings.image_size)
    track.start(rgb, feats, t0, prompts=prompts, answer=answer, masks=masks)
    return track
