"""An independent oracle of VisionReasoner's rewards, written from segzero_spec.md §10 (not from
training/vision_reasoner_rewards.py): regex + json as the spec says, and the best matching found by
trying every assignment (itertools.permutations) instead of the Hungarian algorithm."""

from __future__ import annotations

import itertools
import json
import math
import re


def _answer(text):
    m = re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.DOTALL)
    return json.loads(m.group(1))


def oracle_format(text):
    think = 1.0 if re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.DOTALL) else 0.0
    try:
        items = _answer(text)
        per = []
        for it in items:
            s = 0.0
            b, p = it.get("bbox_2d"), it.get("point_2d")
            s += 1.0 if type(b) is list and len(b) == 4 else 0.0
            s += 1.0 if type(p) is list and len(p) == 2 else 0.0
            per.append(s)
        schema = sum(per) / len(per)
    except Exception:
        schema = 0.0
    return think + schema


def _pair(p, g):
    (a1, b1, a2, b2), (c1, d1, c2, d2) = p["bbox_2d"], g["bbox_2d"]
    inter = max(0, min(a2, c2) - max(a1, c1) + 1) * max(0, min(b2, d2) - max(b1, d1) + 1)
    union = (a2 - a1 + 1) * (b2 - b1 + 1) + (c2 - c1 + 1) * (d2 - d1 + 1) - inter
    r = 1.0 if inter / union > 0.5 else 0.0
    r += 1.0 if (abs(a1 - c1) + abs(b1 - d1) + abs(a2 - c2) + abs(b2 - d2)) / 4 < 10 else 0.0
    px, py = p["point_2d"]
    gx, gy = g["point_2d"]
    inside = a1 <= px <= a2 and b1 <= py <= b2
    r += 1.0 if math.hypot(px - gx, py - gy) < 30 and inside else 0.0
    return r


def oracle_accuracy(text, solution):
    try:
        preds, gts = _answer(text)[:120], json.loads(solution)[:120]
        n = max(len(preds), len(gts))
        small, large, flip = (preds, gts, False) if len(preds) <= len(gts) else (gts, preds, True)
        best = 0.0
        for perm in itertools.permutations(range(len(large)), len(small)):
            total = sum(_pair(large[j], small[i]) if flip else _pair(small[i], large[j]) for i, j in enumerate(perm))
            best = max(best, total)
        return best / n
    except Exception:
        return 0.0


def oracle_non_repeat(text):
    parts = [s.strip() for s in text.split(".") if s.strip()]
    repeated = sum(1 for i, s in enumerate(parts) if s in parts[:i])
    return 0 if repeated >= 2 else 1.0
