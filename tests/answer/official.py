"""The official answer parsers, re-implemented from their description in
``/work/shared/reference/segzero_spec.md`` (section 6 step 4 and section 10), as test oracles.

Both raise exactly where the description says the official code raises (json errors, unbound
variables, missing keys, ``int()`` of something that is not a number). Nothing here is shared with
the code under test.
"""

from __future__ import annotations

import json
import re


def seg_zero_parse(output_text: str, x_factor: float, y_factor: float):
    """Seg-Zero's ``extract_bbox_points_think`` (spec section 6, step 4).

    * the first ``{[^}]+}`` of the whole output, ``json.loads``-ed with no try/except;
    * box: the first key whose ``lower()`` contains ``bbox``, used only if its value has length 4;
    * points: the first two keys whose ``lower()`` contains ``points``;
    * each coordinate ``round(int(v) * factor)`` (int() first, then Python's half-to-even round);
    * think: ``<think>([^<]+)</think>``.
    An unbound box, points or think raises ``UnboundLocalError``.

    Returns ``(box, points, think)``: ``[x1, y1, x2, y2]``, ``[[x, y], [x, y]]``, str.
    """
    json_match = re.search(r"{[^}]+}", output_text)
    if json_match:
        data = json.loads(json_match.group(0))
        bbox_key = next((key for key in data if "bbox" in key.lower()), None)
        if bbox_key and len(data[bbox_key]) == 4:
            b = data[bbox_key]
            box = [
                round(int(b[0]) * x_factor),
                round(int(b[1]) * y_factor),
                round(int(b[2]) * x_factor),
                round(int(b[3]) * y_factor),
            ]
        points_keys = [key for key in data if "points" in key.lower()][:2]
        if len(points_keys) == 2:
            p1, p2 = data[points_keys[0]], data[points_keys[1]]
            points = [
                [round(int(p1[0]) * x_factor), round(int(p1[1]) * y_factor)],
                [round(int(p2[0]) * x_factor), round(int(p2[1]) * y_factor)],
            ]
    think_match = re.search(r"<think>([^<]+)</think>", output_text)
    if think_match:
        think = think_match.group(1)
    return box, points, think  # unbound names raise UnboundLocalError, like the original


def vision_reasoner_parse(output_text: str, x_factor: float, y_factor: float):
    """VisionReasoner's multi-object parser (spec section 10).

    The answer is the text of ``<answer>\\s*(.*?)\\s*</answer>`` (DOTALL), ``json.loads``-ed whole; each
    item's ``bbox_2d`` and ``point_2d`` coordinates become ``int(v * factor + 0.5)``. A missing key or
    malformed JSON raises. The think is not needed (assumption: the spec does not say it is parsed).

    Returns ``(boxes, points)``: one ``[x1, y1, x2, y2]`` and one ``[x, y]`` per item.
    """
    boxes, points = [], []
    match = re.search(r"<answer>\s*(.*?)\s*</answer>", output_text, re.DOTALL)
    if match:
        data = json.loads(match.group(1))
        boxes = [
            [
                int(item["bbox_2d"][0] * x_factor + 0.5),
                int(item["bbox_2d"][1] * y_factor + 0.5),
                int(item["bbox_2d"][2] * x_factor + 0.5),
                int(item["bbox_2d"][3] * y_factor + 0.5),
            ]
            for item in data
        ]
        points = [
            [int(item["point_2d"][0] * x_factor + 0.5), int(item["point_2d"][1] * y_factor + 0.5)] for item in data
        ]
    return boxes, points
