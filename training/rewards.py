"""Seg-Zero's five rule rewards, reproduced exactly, quirks included (reference: segzero_spec.md §3, §11).

Two sets share the official semantics:

* **strict** (``seg_strict``, what both Seg-Zero recipes train with): exact keys ``bbox``, ``points_1``,
  ``points_2``; ``bbox`` and each point must be ``list`` values of length 4 / 2;
* **soft** (``seg``): the box key is the first key whose lower-cased name contains ``bbox``; the format
  check accepts every key containing ``point`` (other than the box key), the point reward reads the first
  two keys containing ``points``; lengths are checked, types are not.

Both read **the first ``{[^}]+}`` anywhere in the completion** (braces in the think hijack the answer),
parse it with Python's ``json`` (NaN / Infinity accepted, the last duplicate key wins), and never repair
anything: reversed boxes stay reversed, points are ``int()``-truncated before an inclusive in-box test
against the raw predicted box, all thresholds are strict (IoU > 0.5, box L1 < 10, point distance < 100,
in model-input pixels). Every exception inside a component gives 0 for that component. The total reward
is the plain sum of the five (0..5).

A third, opt-in **robust** set reads the ``<answer>`` block with ``segzero_edge.decode_answer`` instead
of the first brace span: braces in the think no longer matter, single-quoted dicts and numeric strings
parse, box corners are reordered and clipped to the image, and non-finite numbers are rejected. The
geometry rewards then use the same formulas and thresholds on the decoded box and points (see
docs/training.md, "Reward sets").

Seg-Zero's pixel thresholds are absolute, for its 840 x 840 input. ``thresholds="scaled"`` (opt-in,
``rewards.thresholds`` in a recipe) multiplies the two pixel thresholds by ``input_size / 840`` so a model
with a smaller input (the small world's 224 px) faces the same relative difficulty; at 840 both modes agree.

VisionReasoner's multi-object set (``vision_reasoner``: ``format``, ``accuracy``, ``non_repeat``, at most 7
in all) lives in ``vision_reasoner_rewards`` and is exported here (``vision_reasoner_reward_components``).

For TRL, every component is a separate reward function (``reward_functions``), so each is logged as
``rewards/<name>/mean``; TRL sums them with weight 1.0, which is Seg-Zero's unweighted total.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from segzero_edge.errors import ConfigError

#: The component names, in Seg-Zero's order. Also the keys of ``seg_zero_reward_components``.
COMPONENTS: tuple[str, ...] = ("thinking_format", "segmentation_format", "bbox_iou", "bbox_l1", "point_l1")
#: The reward sets ``reward_functions`` knows (``vision_reasoner``: the multi-object set).
REWARD_SETS: tuple[str, ...] = ("strict", "soft", "robust", "vision_reasoner")

IOU_THRESHOLD = 0.5  # reward if IoU > 0.5
BOX_L1_THRESHOLD = 10.0  # reward if the mean |corner difference| < 10 px
POINT_DISTANCE_THRESHOLD = 100.0  # reward if the mean point distance (best pairing) < 100 px
#: The input size Seg-Zero's pixel thresholds were set for.
SEG_ZERO_INPUT_SIZE = 840
#: How ``thresholds_for`` sets the pixel thresholds: Seg-Zero's absolute pixels, or scaled to the input size.
THRESHOLD_MODES: tuple[str, ...] = ("absolute", "scaled")


@dataclass(frozen=True)
class Thresholds:
    """The three reward thresholds (all strict: IoU >, L1 <, distance <); pixels are model-input pixels."""

    iou: float = IOU_THRESHOLD
    box_l1: float = BOX_L1_THRESHOLD
    point_distance: float = POINT_DISTANCE_THRESHOLD


#: Seg-Zero's thresholds (the default everywhere).
SEG_ZERO_THRESHOLDS = Thresholds()


def thresholds_for(mode: str, input_size: int) -> Thresholds:
    """``absolute``: Seg-Zero's thresholds; ``scaled``: box L1 and point distance times ``input_size / 840``
    (224 px: 2.67 and 26.7 px). The IoU threshold has no unit and stays 0.5."""
    if mode not in THRESHOLD_MODES:
        raise ConfigError(f"unknown reward threshold mode {mode!r}", hint=f"use one of {THRESHOLD_MODES}")
    if mode == "absolute":
        return SEG_ZERO_THRESHOLDS
    f = float(input_size) / SEG_ZERO_INPUT_SIZE
    return Thresholds(IOU_THRESHOLD, BOX_L1_THRESHOLD * f, POINT_DISTANCE_THRESHOLD * f)


_THINK_ANSWER = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_FIRST_BRACES = re.compile(r"{[^}]+}")
_GT_BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
_GT_POINTS = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")


class _Unset(Exception):
    """Stands for the NameError the official code hits when a variable was never assigned."""


# --------------------------------------------------------------------------------------------------
# Parsing helpers (official semantics)
# --------------------------------------------------------------------------------------------------


def parse_solution(solution: str) -> tuple[list[int] | None, list[list[int]] | None]:
    """The ground-truth box and points of a ``solution`` string (None where the regex does not match).

    ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>``: non-negative integers, no spaces; the
    regexes are searched anywhere in the string, as in Seg-Zero.
    """
    box = points = None
    if isinstance(solution, str):
        m = _GT_BOX.search(solution)
        if m:
            box = [int(g) for g in m.groups()]
        m = _GT_POINTS.search(solution)
        if m:
            v = [int(g) for g in m.groups()]
            points = [[v[0], v[1]], [v[2], v[3]]]
    return box, points


def format_solution(box: Sequence[int], points: Sequence[Sequence[int]]) -> str:
    """The ``solution`` string for a box and two points (ints in model-input pixels)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    (px1, py1), (px2, py2) = ((int(p[0]), int(p[1])) for p in points)
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({px1},{py1}),({px2},{py2})</points>"


def _first_json(completion: str) -> Any:
    """``json.loads`` of the first ``{[^}]+}`` of the whole completion; raises like the official code."""
    m = _FIRST_BRACES.search(completion)
    if m is None:
        raise _Unset("no brace span")
    return json.loads(m.group(0))


def _soft_box_key(data: dict) -> str:
    for key in data:
        if "bbox" in key.lower():
            return key
    raise _Unset("no bbox key")


def _soft_point_keys(data: dict, needle: str, exclude: str | None = None) -> list[str]:
    return [k for k in data if needle in k.lower() and k != exclude]


def _iou_inclusive(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Seg-Zero's IoU: intersection only when ix1 < ix2 and iy1 < iy2, then +1 pixel areas."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    if ix1 < ix2 and iy1 < iy2:
        inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1)
    else:
        inter = 0
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return float(inter) / union


def _box_l1(a: Sequence[Any], b: Sequence[Any]) -> float:
    return sum(abs(a[i] - b[i]) for i in range(4)) / 4


def _point_in_box(p: Sequence[Any], box: Sequence[Any]) -> bool:
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _dist(p: Sequence[Any], q: Sequence[Any]) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


def _points_reward(
    pred_points: list[list[Any]],
    pred_box: Sequence[Any],
    gt_points: list[list[int]],
    threshold: float = POINT_DISTANCE_THRESHOLD,
) -> float:
    if not (_point_in_box(pred_points[0], pred_box) and _point_in_box(pred_points[1], pred_box)):
        return 0.0
    straight = (_dist(pred_points[0], gt_points[0]) + _dist(pred_points[1], gt_points[1])) / 2
    swapped = (_dist(pred_points[0], gt_points[1]) + _dist(pred_points[1], gt_points[0])) / 2
    return 1.0 if min(straight, swapped) < threshold else 0.0


def _guard(fn: Callable[[], float]) -> float:
    """Run one component; any exception (the official code catches all) gives 0."""
    try:
        return float(fn())
    except Exception:
        return 0.0


# --------------------------------------------------------------------------------------------------
# The five components
# --------------------------------------------------------------------------------------------------


def thinking_format(completion: str) -> float:
    """1 if the *whole* completion is ``<think>…</think>`` + whitespace + ``<answer>…</answer>``."""
    return 1.0 if isinstance(completion, str) and _THINK_ANSWER.fullmatch(completion) else 0.0


def segmentation_format(completion: str, strict: bool = True) -> float:
    """1 if the first brace span parses and has the box and two points of the right lengths."""

    def strict_check() -> float:
        data = _first_json(completion)
        if not all(k in data for k in ("bbox", "points_1", "points_2")):
            return 0.0
        if not isinstance(data["bbox"], list) or len(data["bbox"]) != 4:
            return 0.0
        for k in ("points_1", "points_2"):
            if not isinstance(data[k], list) or len(data[k]) != 2:
                return 0.0
        return 1.0

    def soft_check() -> float:
        data = _first_json(completion)
        box_key = _soft_box_key(data)
        point_keys = _soft_point_keys(data, "point", exclude=box_key)
        if len(point_keys) < 2:
            return 0.0
        if len(data[box_key]) != 4:
            return 0.0
        return 1.0 if len(data[point_keys[0]]) == 2 and len(data[point_keys[1]]) == 2 else 0.0

    return _guard(strict_check if strict else soft_check)


def _pred_box(data: dict, strict: bool) -> Any:
    key = "bbox" if strict else _soft_box_key(data)
    if key in data and len(data[key]) == 4:
        return data[key]
    raise _Unset("pred_bbox")


def bbox_iou(
    completion: str, solution: str, strict: bool = True, thresholds: Thresholds = SEG_ZERO_THRESHOLDS
) -> float:
    """1 if the predicted box's inclusive-pixel IoU with the ground truth is > 0.5."""

    def run() -> float:
        gt_box, _ = parse_solution(solution)
        if gt_box is None:
            raise _Unset("gt_bbox")
        box = _pred_box(_first_json(completion), strict)
        return 1.0 if _iou_inclusive(box, gt_box) > thresholds.iou else 0.0

    return _guard(run)


def bbox_l1(completion: str, solution: str, strict: bool = True, thresholds: Thresholds = SEG_ZERO_THRESHOLDS) -> float:
    """1 if the mean absolute difference of the four box coordinates is < 10 (``thresholds.box_l1``)."""

    def run() -> float:
        gt_box, _ = parse_solution(solution)
        if gt_box is None:
            raise _Unset("gt_bbox")
        box = _pred_box(_first_json(completion), strict)
        return 1.0 if _box_l1(box, gt_box) < thresholds.box_l1 else 0.0

    return _guard(run)


def point_l1(
    completion: str, solution: str, strict: bool = True, thresholds: Thresholds = SEG_ZERO_THRESHOLDS
) -> float:
    """1 if both int()-truncated points lie in the raw predicted box and the mean Euclidean distance
    to the ground-truth points under the better pairing is < 100 (``thresholds.point_distance``; called
    "L1" in Seg-Zero)."""

    def run() -> float:
        _, gt_points = parse_solution(solution)
        if gt_points is None:
            raise _Unset("gt_points")
        data = _first_json(completion)
        box = _pred_box(data, strict)
        keys = ["points_1", "points_2"] if strict else _soft_point_keys(data, "points")[:2]
        pred = [[int(data[k][0]), int(data[k][1])] for k in (keys[0], keys[1])]
        return _points_reward(pred, box, gt_points, thresholds.point_distance)

    return _guard(run)


def seg_zero_reward_components(
    completion: str, solution: str, strict: bool = True, thresholds: Thresholds = SEG_ZERO_THRESHOLDS
) -> dict[str, float]:
    """The five Seg-Zero reward components of one completion (each 0.0 or 1.0).

    Args:
        completion: the generated text, decoded with special tokens skipped (no ``<|im_end|>``).
        solution: the dataset's ``<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>`` string.
        strict: the ``seg_strict`` set (Seg-Zero's training default) or, if False, the soft ``seg`` set.
        thresholds: Seg-Zero's by default; ``thresholds_for("scaled", input_size)`` for small inputs.

    Returns:
        ``{"thinking_format", "segmentation_format", "bbox_iou", "bbox_l1", "point_l1"}`` -> 0.0 / 1.0.
        Their plain sum is Seg-Zero's reward.
    """
    return {
        "thinking_format": thinking_format(completion),
        "segmentation_format": segmentation_format(completion, strict),
        "bbox_iou": bbox_iou(completion, solution, strict, thresholds),
        "bbox_l1": bbox_l1(completion, solution, strict, thresholds),
        "point_l1": point_l1(completion, solution, strict, thresholds),
    }


def seg_zero_reward(completion: str, solution: str, strict: bool = True) -> float:
    """Seg-Zero's total reward: the unweighted sum of the five components (0..5)."""
    return sum(seg_zero_reward_components(completion, solution, strict).values())


# --------------------------------------------------------------------------------------------------
# Robust set (our answer decoder instead of the first brace span)
# --------------------------------------------------------------------------------------------------


def robust_reward_components(
    completion: str, solution: str, input_size: int, thresholds: Thresholds = SEG_ZERO_THRESHOLDS
) -> dict[str, float]:
    """The five components computed on ``segzero_edge.decode_answer``'s reading of the answer.

    ``thinking_format`` is the official one. ``segmentation_format`` is 1 when the decoder finds a box
    and two points. ``bbox_iou`` / ``bbox_l1`` use the official formulas and thresholds on the decoded
    box (reordered, clipped to the image) whenever one is found; ``point_l1`` needs two decoded points
    (int()-truncated, inside the decoded box). Coordinates are ``input_size`` pixels (image size ==
    model size, so the decoder does not rescale).
    """
    from segzero_edge import decode_answer  # the answer decoder is part of the runtime contract

    size = (int(input_size), int(input_size))
    text = completion if isinstance(completion, str) else ""
    answer = decode_answer(text, image_size=size, model_size=size)
    out = dict.fromkeys(COMPONENTS, 0.0)
    out["thinking_format"] = thinking_format(text)
    if not answer.ok or answer.box is None:
        return out
    box = list(answer.box)
    two_points = len(answer.points) >= 2
    out["segmentation_format"] = 1.0 if two_points else 0.0
    gt_box, gt_points = parse_solution(solution)
    if gt_box is not None:
        out["bbox_iou"] = _guard(lambda: 1.0 if _iou_inclusive(box, gt_box) > thresholds.iou else 0.0)
        out["bbox_l1"] = _guard(lambda: 1.0 if _box_l1(box, gt_box) < thresholds.box_l1 else 0.0)
    if gt_points is not None and two_points:
        pred = [[int(p[0]), int(p[1])] for p in answer.points[:2]]
        out["point_l1"] = _guard(lambda: _points_reward(pred, box, gt_points, thresholds.point_distance))
    return out


# --------------------------------------------------------------------------------------------------
# TRL reward functions
# --------------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string, or a conversational list of message dicts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[0], dict):
        content = completion[0].get("content", "")
        if isinstance(content, list):  # multimodal message content: join the text parts
            return "".join(c.get("text", "") for c in content if isinstance(c, dict))
        return str(content)
    return ""


class RewardFunction:
    """One reward component as a TRL reward function (``__name__`` is what TRL logs).

    Called by TRL as ``fn(prompts=..., completions=..., solution=[...], **other_columns)`` and returns
    one float per completion.
    """

    def __init__(self, component: str, reward_set: str, input_size: int, thresholds: str = "absolute") -> None:
        if reward_set not in REWARD_SETS:
            raise ConfigError(f"unknown reward set {reward_set!r}", hint=f"use one of {REWARD_SETS}")
        names = components_of(reward_set)
        if component not in names:
            raise ConfigError(f"unknown reward component {component!r}", hint=f"use one of {names}")
        self.component = component
        self.reward_set = reward_set
        self.input_size = int(input_size)
        self.threshold_mode = thresholds
        self.thresholds = thresholds_for(thresholds, self.input_size)
        self.__name__ = component

    def __call__(self, completions: Sequence[Any], solution: Sequence[str] | None = None, **_: Any) -> list[float]:
        if solution is None:
            raise ConfigError(
                "the training dataset has no 'solution' column",
                hint="load it with segzero_edge.training.data.load_seg_zero_dataset",
            )
        out = []
        for completion, sol in zip(completions, solution, strict=True):
            text = completion_text(completion)
            if self.reward_set == "vision_reasoner":
                scale = self.thresholds.box_l1 / BOX_L1_THRESHOLD
                out.append(float(vision_reasoner_reward_components(text, sol, scale)[self.component]))
            elif self.reward_set == "robust":
                out.append(robust_reward_components(text, sol, self.input_size, self.thresholds)[self.component])
            elif self.component == "thinking_format":
                out.append(thinking_format(text))
            elif self.component == "segmentation_format":
                out.append(segmentation_format(text, self.reward_set == "strict"))
            else:
                fn = {"bbox_iou": bbox_iou, "bbox_l1": bbox_l1, "point_l1": point_l1}[self.component]
                out.append(fn(text, sol, self.reward_set == "strict", self.thresholds))
        return out

    def __repr__(self) -> str:
        return (
            f"RewardFunction({self.component!r}, {self.reward_set!r}, input_size={self.input_size}, "
            f"thresholds={self.threshold_mode!r})"
        )


def components_of(reward_set: str) -> tuple[str, ...]:
    """The component names of ``reward_set``: Seg-Zero's five, or VisionReasoner's three."""
    return VR_COMPONENTS if reward_set == "vision_reasoner" else COMPONENTS


def reward_functions(
    reward_set: str = "strict", *, input_size: int, thresholds: str = "absolute"
) -> list[RewardFunction]:
    """The components of ``reward_set`` as TRL reward functions, in the official order; ``thresholds``
    is ``absolute`` (the official pixels) or ``scaled`` (to ``input_size``, see ``thresholds_for``; for the
    VisionReasoner set its own box-L1 and point thresholds scale the same way)."""
    return [RewardFunction(name, reward_set, input_size, thresholds) for name in components_of(reward_set)]


# The VisionReasoner set builds on thinking_format above, so it is imported last.
from .vision_reasoner_rewards import VR_COMPONENTS, vision_reasoner_reward_components  # noqa: E402
