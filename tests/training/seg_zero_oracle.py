"""Test oracle: Seg-Zero's reward functions re-written from the prose of segzero_spec.md §3 only.

Written in the shape the spec describes (one ``try`` per component, variables bound only on the path
the spec names, so a missing ground truth or box raises a NameError that the ``except`` turns into 0),
deliberately *not* sharing code or structure with ``training/rewards.py``. The property test runs both
on generated completions and requires identical results.
"""

from __future__ import annotations

import json
import math
import re


def _think(s):
    return 1.0 if re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", s, re.DOTALL) else 0.0


def _gt(ground_truth):
    box = points = None
    m = re.search(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", ground_truth)
    if m:
        box = [int(m.group(i)) for i in range(1, 5)]
    m = re.search(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>", ground_truth)
    if m:
        points = [[int(m.group(1)), int(m.group(2))], [int(m.group(3)), int(m.group(4))]]
    return box, points


def _iou_value(b1, b2):
    x1, y1 = max(b1[0], b2[0]), max(b1[1], b2[1])
    x2, y2 = min(b1[2], b2[2]), min(b1[3], b2[3])
    inter = (x2 - x1 + 1) * (y2 - y1 + 1) if (x1 < x2 and y1 < y2) else 0
    a1 = (b1[2] - b1[0] + 1) * (b1[3] - b1[1] + 1)
    a2 = (b2[2] - b2[0] + 1) * (b2[3] - b2[1] + 1)
    return float(inter) / (a1 + a2 - inter)


def _box_key(data, strict):
    if strict:
        return "bbox"
    for k in data:
        if "bbox" in k.lower():
            return k
    return None  # data[None] then raises KeyError


def oracle(predict_str: str, ground_truth: str, strict: bool = True) -> dict[str, float]:
    out = {"thinking_format": _think(predict_str)}

    # segmentation format
    try:
        m = re.search(r"{[^}]+}", predict_str)
        data = json.loads(m.group(0))  # AttributeError when there is no match -> 0
        if strict:
            ok = (
                "bbox" in data
                and "points_1" in data
                and "points_2" in data
                and type(data["bbox"]) is list
                and len(data["bbox"]) == 4
                and type(data["points_1"]) is list
                and len(data["points_1"]) == 2
                and type(data["points_2"]) is list
                and len(data["points_2"]) == 2
            )
        else:
            bk = _box_key(data, False)
            pks = [k for k in data if "point" in k.lower() and k != bk]
            ok = len(pks) >= 2 and len(data[bk]) == 4 and len(data[pks[0]]) == 2 and len(data[pks[1]]) == 2
        out["segmentation_format"] = 1.0 if ok else 0.0
    except Exception:
        out["segmentation_format"] = 0.0

    gt_box, gt_points = _gt(ground_truth)

    # bbox IoU
    out["bbox_iou"] = 0.0
    try:
        if gt_box is not None:
            gt_bbox = gt_box
        m = re.search(r"{[^}]+}", predict_str)
        if m:
            data = json.loads(m.group(0))
            key = _box_key(data, strict)
            if key in data and len(data[key]) == 4 and _iou_value(data[key], gt_bbox) > 0.5:
                out["bbox_iou"] = 1.0
    except Exception:
        pass

    # bbox L1
    out["bbox_l1"] = 0.0
    try:
        if gt_box is not None:
            gt_bbox2 = gt_box
        m = re.search(r"{[^}]+}", predict_str)
        if m:
            data = json.loads(m.group(0))
            key = _box_key(data, strict)
            if key in data and len(data[key]) == 4:
                b = data[key]
                l1 = (
                    abs(b[0] - gt_bbox2[0])
                    + abs(b[1] - gt_bbox2[1])
                    + abs(b[2] - gt_bbox2[2])
                    + abs(b[3] - gt_bbox2[3])
                ) / 4
                if l1 < 10:
                    out["bbox_l1"] = 1.0
    except Exception:
        pass

    # point "L1" (mean Euclidean distance, best of the two pairings)
    out["point_l1"] = 0.0
    try:
        if gt_points is not None:
            gtp = gt_points
        m = re.search(r"{[^}]+}", predict_str)
        if m:
            data = json.loads(m.group(0))
            key = _box_key(data, strict)
            if key in data and len(data[key]) == 4:
                pred_box = data[key]
            if strict:
                p1, p2 = data["points_1"], data["points_2"]
            else:
                keys = [k for k in data if "points" in k.lower()]
                p1, p2 = data[keys[0]], data[keys[1]]
            q1 = [int(p1[0]), int(p1[1])]
            q2 = [int(p2[0]), int(p2[1])]
            inside = all(pred_box[0] <= q[0] <= pred_box[2] and pred_box[1] <= q[1] <= pred_box[3] for q in (q1, q2))
            if inside:

                def d(a, b):
                    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)

                best = min(d(q1, gtp[0]) + d(q2, gtp[1]), d(q1, gtp[1]) + d(q2, gtp[0])) / 2
                if best < 100:
                    out["point_l1"] = 1.0
    except Exception:
        pass
    return out
