"""Result types returned by the SDK (frozen dataclasses).

Coordinate convention everywhere: pixels of the *original* image, x to the right, y down, origin at
the top-left corner of the top-left pixel. Boxes are ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and
``y1 <= y2``; points are ``(x, y)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class AnswerObject:
    """One object of a decoded answer.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in original-image pixels, corners reordered and clipped to the image.
        points: the object's points ``((x, y), ...)`` in original-image pixels (two for Seg-Zero,
            one for VisionReasoner answers), clipped to the image.
        raw_box: the box as the official parser of the answer's format computes it: rescaled to the
            original image and rounded (Seg-Zero ``round(int(v) * W / model_w)``, VisionReasoner
            ``int(v * W / model_w + 0.5)``), before reordering and clipping (which come after).
        raw_points: the points the same way, before clipping.
        model_box: the box exactly as the model wrote it, in model-input pixels.
        model_points: the points as written, in model-input pixels.
    """

    box: Box
    points: tuple[Point, ...] = ()
    raw_box: Box | None = None
    raw_points: tuple[Point, ...] = ()
    model_box: Box | None = None
    model_points: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The reasoning model's output, decoded.

    Attributes:
        ok: True when a usable box (and points) were found; never raises on model output.
        box: the first object's box, ``(x1, y1, x2, y2)`` in original-image pixels, or None.
        points: the first object's points in original-image pixels (empty when not ok).
        think: the text inside ``<think>...</think>`` (whatever it contains), or None if absent.
        error: why decoding failed (None when ok).
        objects: every decoded object; ``objects[0]`` is also ``box``/``points``.
        raw_text: the text that was decoded.
    """

    ok: bool
    box: Box | None = None
    points: tuple[Point, ...] = ()
    think: str | None = None
    error: str | None = None
    objects: tuple[AnswerObject, ...] = ()
    raw_text: str = ""


@dataclass(frozen=True)
class GenerationStats:
    """How one answer was generated.

    Attributes:
        prompt_tokens: prompt length (image tokens included).
        generated_tokens: tokens generated (forced ones and EOS included).
        decode_tokens_per_s: generated tokens per second of the decode stage.
        stop_reason: ``"answer"`` (``</answer>`` closed it), ``"eos"`` or ``"max_new_tokens"``.
        forward_calls: decoder calls, prefill included.
        forced_tokens: tokens the answer constraint forced.
    """

    prompt_tokens: int
    generated_tokens: int
    decode_tokens_per_s: float
    stop_reason: str
    forward_calls: int = 0
    forced_tokens: int = 0


@dataclass(frozen=True, eq=False)
class ObjectMask:
    """One object of a ``Segmentation``: one per object of the answer (``predict``) or per tracked object.

    Attributes:
        mask: ``(H, W)`` bool at the frame's size (all False when the object is not visible).
        box: the mask's bounding box ``(x1, y1, x2, y2)`` (pixel edges: ``x2 = last column + 1``), None
            when the mask is empty.
        score: SAM2's predicted IoU of the mask.
        object_score: SAM2's object-presence logit; a tracked object with ``<= 0`` is "not in this frame"
            and its mask is empty (``predict`` reports it and keeps the mask, as SAM2's image predictor does).
        lost: no mask: ``object_score <= 0`` in a track, an empty mask, or (``predict``) a prompt box outside
            the image, for which SAM2 is not run.
        prompt_box: the box SAM2 was prompted with (``predict``: the answer's box, reordered and clipped),
            or None.
        points: the point prompts given to SAM2 (``predict``: the answer's points).
    """

    mask: np.ndarray
    box: Box | None
    score: float
    object_score: float
    lost: bool
    prompt_box: Box | None = None
    points: tuple[Point, ...] = ()

    def __post_init__(self) -> None:
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.dtype != np.bool_:
            raise ValueError(f"ObjectMask.mask must be a 2-D bool array, got {mask.dtype} {mask.shape}")
        if not self.lost and not mask.any():
            raise ValueError("ObjectMask(lost=False) with an empty mask")
        mask.setflags(write=False)
        object.__setattr__(self, "mask", mask)


def _readonly_timings(timings: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(timings))


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The result of ``Segmenter.predict``.

    Attributes:
        mask: ``(H, W)`` bool array at the original image size, the union of the objects' masks; all False
            when nothing was found.
        found: True exactly when ``mask`` has at least one pixel. False when the answer could not be
            decoded, named no object (a VisionReasoner ``[]``), its boxes have no area inside the image, or
            SAM2 returned empty masks (``error`` says why; ``box``/``points`` then hold the prompts that were
            tried, if any).
        box: ``(x1, y1, x2, y2)`` prompt given to SAM2 for the first object, original-image pixels
            (reordered and clipped). LENS engines prompt SAM2 with the model's hidden states, not a box: there
            it is the mask's bounding box (the answer's auxiliary box is ``answer.box``).
        points: the first object's point prompts, original-image pixels.
        score: SAM2's predicted IoU of the first object's chosen mask (0.0 when nothing was found).
        reasoning: the think text, or None.
        raw_text: the full generated text.
        timings_ms: milliseconds per stage, plus ``"total"``.
        answer: the decoded answer (raw decoded values included).
        error: why nothing was found (None when found).
        generation: token counts and speed of the reasoning (None for ``segment``).
        objects: per object (of the answer for ``predict``/``segment``, of the track for ``Track.update``):
            mask, box, scores, ``lost`` and the prompts; ``mask`` is their union. Empty when the answer
            named no usable object.
        lost: a track's objects are all lost in this frame (``found`` is then False).
        frame_index: the frame's index in its track (0 = the first prompted frame), else None.
    """

    mask: np.ndarray
    found: bool
    box: Box | None = None
    points: tuple[Point, ...] = ()
    score: float = 0.0
    reasoning: str | None = None
    raw_text: str = ""
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    answer: Answer | None = None
    error: str | None = None
    generation: GenerationStats | None = None
    objects: tuple[ObjectMask, ...] = ()
    lost: bool = False
    frame_index: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        mask = np.asarray(self.mask)
        if mask.ndim != 2 or mask.dtype != np.bool_:
            raise ValueError(f"Segmentation.mask must be a 2-D bool array, got {mask.dtype} {mask.shape}")
        if self.found != bool(mask.any()):  # an impossible result is never reported as found
            raise ValueError(f"Segmentation(found={self.found}) with a mask of {int(mask.sum())} pixels")
        if not self.found and not self.error:
            raise ValueError("Segmentation(found=False) needs an error that says why")
        mask.setflags(write=False)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "timings_ms", _readonly_timings(self.timings_ms))
