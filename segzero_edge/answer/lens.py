"""LENS answers: the box a LENS reasoner writes, in original-image pixels.

LENS's mask never depends on its text (it comes from the hidden states of learned queries run after the
answer), so this box is auxiliary: it is reported with the mask, and an answer without one still gives a
mask. The rule is LENS's (hustvl/LENS ``src/open_r1/utils.py`` ``parse_float_sequence_within``): the first
four numbers written as ``[a, b, c, d]``; failing that, the first ``(a, b, c, d)``; failing that, the first
``(a, b), (c, d)`` (Qwen's native grounding text: ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>`` with the special
tokens skipped). Numbers are optionally negative decimals without exponent. Coordinates are pixels of the
model input (``model_size``); they are rescaled to the original image, reordered and clipped.

Regular expressions rather than the native decoder: this is three fixed patterns over a short text, run once
per request, with no streaming or constraint to share state with.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ..types import Answer, AnswerObject

_NUM = r"(-?\d+(?:\.\d+)?)"
_PATTERNS = (
    re.compile(rf"\[\s*{_NUM},\s*{_NUM},\s*{_NUM},\s*{_NUM}\s*\]"),
    re.compile(rf"\(\s*{_NUM},\s*{_NUM},\s*{_NUM},\s*{_NUM}\s*\)"),
    re.compile(rf"\(\s*{_NUM},\s*{_NUM}\),\s*\(\s*{_NUM},\s*{_NUM}\)"),
)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def lens_box(text: str) -> tuple[float, float, float, float] | None:
    """The first box of ``text`` by LENS's rule, in the coordinates written (None when there is none)."""
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            values = tuple(float(v) for v in match.groups())
            return values if all(math.isfinite(v) for v in values) else None
    return None


def decode_lens_answer(text: str, image_size: Sequence[int], model_size: int | Sequence[int]) -> Answer:
    """A LENS reasoner's text as an ``Answer`` (one object: the box, no points; never raises on model text).

    Args:
        text: the generated text, special tokens skipped.
        image_size: ``(width, height)`` of the original image.
        model_size: the model input in pixels (an int for a square input, or ``(width, height)``).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    w, h = (int(v) for v in image_size)
    mw, mh = (model_size, model_size) if isinstance(model_size, int) else (int(v) for v in model_size)
    think_match = _THINK.search(text)
    think = think_match.group(1) if think_match else None
    written = lens_box(text)  # the whole completion, as LENS reads it (a box inside the think counts too)
    if written is None:
        return Answer(ok=False, think=think, error="the answer has no box (LENS writes [x1,y1,x2,y2])", raw_text=text)
    sx, sy = w / mw, h / mh
    raw = (written[0] * sx, written[1] * sy, written[2] * sx, written[3] * sy)
    x1, x2 = sorted((min(max(raw[0], 0.0), w), min(max(raw[2], 0.0), w)))
    y1, y2 = sorted((min(max(raw[1], 0.0), h), min(max(raw[3], 0.0), h)))
    box = (x1, y1, x2, y2)
    obj = AnswerObject(box=box, raw_box=raw, model_box=written)
    return Answer(ok=True, box=box, think=think, objects=(obj,), raw_text=text)
