"""The objects of one answer through SAM2: prompts in, one ``ObjectMask`` per object out.

``segment_objects`` decodes every object whose box lies in the image in one decoder call (objects with the
same number of points share a call: Seg-Zero's box + 2 points, VisionReasoner's box + 1 point), and reports
the others lost without running SAM2 for them (an impossible prompt is never segmented). ``Segmenter``
builds its ``Segmentation`` from the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..types import Box, ObjectMask, Point
from .host import format_box, mask_box
from .pipeline import Sam2Features, Sam2Pipeline


class Prompt(NamedTuple):
    """One object's SAM2 prompts in original-image pixels; ``outside``: the box has no area in the image."""

    box: Box | None
    points: tuple[Point, ...]
    outside: bool


class ObjectsResult(NamedTuple):
    """``objects`` in prompt order, their union ``(H, W)`` bool, why nothing was found (None when something
    was), and SAM2's stage timings."""

    objects: tuple[ObjectMask, ...]
    union: np.ndarray
    error: str | None
    timings_ms: dict[str, float]


def segment_objects(
    sam2: Sam2Pipeline,
    features: Sam2Features,
    prompts: Sequence[Prompt],
    *,
    labels: Sequence[int] | None = None,
    mask_mode: str | None = None,
) -> ObjectsResult:
    """SAM2's mask for each of ``prompts`` (at least one) on the encoded image.

    Args:
        labels: the point labels of a single prompt (``Segmenter.segment``); None: all foreground.
        mask_mode: ``Sam2Pipeline.decode``'s.
    """
    w, h = features.image_size
    inside = [i for i, p in enumerate(prompts) if not p.outside]
    masks = [np.zeros((h, w), bool)] * len(prompts)
    scores, presence = [0.0] * len(prompts), [0.0] * len(prompts)
    timings: dict[str, float] = {}
    if inside:
        boxes = [prompts[i].box for i in inside]
        result = sam2.decode(
            features,
            box=None if boxes[0] is None else np.asarray(boxes, np.float32),
            points=[np.asarray(prompts[i].points, np.float32).reshape(-1, 2) for i in inside],
            labels=None if labels is None else [np.asarray(labels, np.float32)],
            mask_mode=mask_mode,
        )
        timings = {f"sam2_{k}": v for k, v in result.timings_ms.items()}
        for k, i in enumerate(inside):
            masks[i] = result.masks[k]
            scores[i], presence[i] = float(result.scores[k]), float(result.object_score_logits[k])
    objects = tuple(
        ObjectMask(
            mask=m,
            box=mask_box(m),
            score=scores[i],
            object_score=presence[i],
            lost=not m.any(),
            prompt_box=p.box,
            points=tuple(p.points),
        )
        for i, (p, m) in enumerate(zip(prompts, masks))
    )
    union = np.logical_or.reduce([o.mask for o in objects]) if len(objects) > 1 else objects[0].mask
    error = None
    if not union.any():
        if not inside:
            where = "s lie" if len(prompts) > 1 else " lies"
            error = f"the box{where} outside the {w}x{h} image (clipped to {format_box(prompts[0].box)})"
        else:
            error = "SAM2 returned an empty mask for these prompts"
    return ObjectsResult(objects, union, error, timings)
