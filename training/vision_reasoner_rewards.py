"""VisionReasoner's multi-object rewards, reproduced with their quirks (reference: segzero_spec.md §10).

Three components, whose plain sum is the official total (at most 7):

* ``format`` (0..3): Seg-Zero's think format (the whole completion fullmatches
  ``<think>…</think>\\s*<answer>…</answer>``, 0/1) plus a schema score (0..2): the answer is
  ``<answer>\\s*(.*?)\\s*</answer>`` (first match, DOTALL) read whole with Python's ``json``; each item adds
  1 for a ``bbox_2d`` list of length 4 and 1 for a ``point_2d`` list of length 2, and the sum is divided by
  the number of items.
* ``accuracy`` (0..3): at most 120 objects per side (the first 120); per (prediction, ground truth) pair,
  ``[IoU > 0.5] + [mean L1 of the corners < 10] + [point distance < 30 and the predicted point lies in its
  own predicted box]``, with IoU in the +1 pixel convention and ``max(0, ·)`` overlaps (touching boxes
  share a line of pixels, unlike Seg-Zero's strict test); pairs are matched by the Hungarian algorithm on
  ``3 - reward`` (``scipy.optimize.linear_sum_assignment``) and the matched rewards summed, divided by
  ``max(#predictions, #ground truth)``.
* ``non_repeat`` (0 or 1.0): the whole completion split on ``.``, stripped, empty pieces dropped; if two or
  more sentences repeat an earlier one the reward is the **integer** 0 (the official return value),
  otherwise 1.0.

Coordinates are the model's input pixels (840 for VisionReasoner; ``scale`` multiplies the two pixel
thresholds, e.g. ``input_size / 840`` for a smaller model, as Seg-Zero's ``thresholds="scaled"``); the
ground truth ``solution`` is the official JSON list ``[{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]},
...]``. Any exception inside a part gives 0 for it, as in the official code; points and boxes are used as
written (no reordering).
The in-box test is inclusive (``x1 <= x <= x2``), as Seg-Zero's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from .rewards import thinking_format

#: Component names, in the official order; keys of ``vision_reasoner_reward_components``.
VR_COMPONENTS: tuple[str, ...] = ("format", "accuracy", "non_repeat")
#: The most objects read from each side.
MAX_OBJECTS = 120
IOU_THRESHOLD = 0.5
BOX_L1_THRESHOLD = 10.0
POINT_DISTANCE_THRESHOLD = 30.0

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)


def _answer_json(completion: str) -> Any:
    m = _ANSWER.search(completion)
    if m is None:
        raise ValueError("no <answer> block")
    return json.loads(m.group(1))


def schema_score(completion: str) -> float:
    """The per-object schema part of ``format`` (0..2); 0 when the answer does not parse or is empty."""
    try:
        items = _answer_json(completion)
        score = 0.0
        for item in items:
            if isinstance(item.get("bbox_2d"), list) and len(item["bbox_2d"]) == 4:
                score += 1.0
            if isinstance(item.get("point_2d"), list) and len(item["point_2d"]) == 2:
                score += 1.0
        return score / len(items)
    except Exception:  # the official code scores any failure 0
        return 0.0


def vision_reasoner_format(completion: str) -> float:
    """``thinking_format`` + ``schema_score`` (0..3)."""
    return thinking_format(completion) + schema_score(completion)


def box_iou_plus_one(a: Sequence[Any], b: Sequence[Any]) -> float:
    """IoU with +1 pixel areas and ``max(0, ·)`` overlaps."""
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return float(inter) / union


def pair_reward(pred: dict, gt: dict, scale: float = 1.0) -> float:
    """The reward of one (prediction, ground truth) pair, 0..3 (``scale``: pixel thresholds times it)."""
    pb, gb, pp, gp = pred["bbox_2d"], gt["bbox_2d"], pred["point_2d"], gt["point_2d"]
    reward = 0.0
    if box_iou_plus_one(pb, gb) > IOU_THRESHOLD:
        reward += 1.0
    if sum(abs(pb[i] - gb[i]) for i in range(4)) / 4 < BOX_L1_THRESHOLD * scale:
        reward += 1.0
    dist = math.sqrt((pp[0] - gp[0]) ** 2 + (pp[1] - gp[1]) ** 2)
    if dist < POINT_DISTANCE_THRESHOLD * scale and pb[0] <= pp[0] <= pb[2] and pb[1] <= pp[1] <= pb[3]:
        reward += 1.0
    return reward


def match_objects(
    preds: Sequence[dict], gts: Sequence[dict], scale: float = 1.0
) -> tuple[list[tuple[int, int]], list[list[float]]]:
    """The Hungarian matching of predictions to ground truth on ``3 - pair_reward``: the matched
    ``(pred, gt)`` index pairs and the reward matrix."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    rewards = [[pair_reward(p, g, scale) for g in gts] for p in preds]
    if not preds or not gts:
        return [], rewards
    rows, cols = linear_sum_assignment(3.0 - np.asarray(rewards, dtype=np.float64))
    return [(int(r), int(c)) for r, c in zip(rows, cols)], rewards


def vision_reasoner_accuracy(completion: str, solution: str, scale: float = 1.0) -> float:
    """The ``accuracy`` component (0..3); see the module docstring."""
    try:
        preds = list(_answer_json(completion))[:MAX_OBJECTS]
        gts = list(json.loads(solution))[:MAX_OBJECTS]
        pairs, rewards = match_objects(preds, gts, scale)
        return sum(rewards[r][c] for r, c in pairs) / max(len(preds), len(gts))
    except Exception:  # includes both lists empty (0 / 0): the official code scores any failure 0
        return 0.0


def non_repeat(completion: str) -> float | int:
    """1.0 when no sentence (split on ``.``) repeats an earlier one, or only one does; else the int 0."""
    sentences = [s.strip() for s in completion.split(".")]
    seen: set[str] = set()
    repeats = 0
    for s in sentences:
        if not s:
            continue
        if s in seen:
            repeats += 1
        seen.add(s)
    return 0 if repeats >= 2 else 1.0


def vision_reasoner_reward_components(completion: str, solution: str, scale: float = 1.0) -> dict[str, float]:
    """The three VisionReasoner reward components of one completion.

    Args:
        completion: the generated text (special tokens skipped).
        solution: the ground truth, the official JSON list of ``{"bbox_2d": [...], "point_2d": [...]}``.
        scale: the box-L1 and point-distance thresholds are multiplied by it (1.0: the official pixels).

    Returns:
        ``{"format": 0..3, "accuracy": 0..3, "non_repeat": 0 or 1.0}``; their plain sum is the official total.
    """
    text = completion if isinstance(completion, str) else ""
    return {
        "format": vision_reasoner_format(text),
        "accuracy": vision_reasoner_accuracy(text, solution, scale),
        "non_repeat": non_repeat(text),
    }


def format_objects_solution(objects: Sequence[tuple[Sequence[int], Sequence[int]]]) -> str:
    """The official ground-truth string for ``(box, point)`` pairs (ints in model-input pixels)."""
    items = [{"bbox_2d": [int(v) for v in box], "point_2d": [int(v) for v in point]} for box, point in objects]
    return json.dumps(items)
