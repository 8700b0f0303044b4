"""Pure-Python twin of the native answer decoder and stream (``csrc/core/answer_decoder.*``,
``csrc/core/answer_stream.*``).

It is the fallback when the extension is missing and the oracle the native code is tested against:
the rules, their order and every message are the same, and are documented once, in
``csrc/core/answer_decoder.hpp`` (which text is read, which schema, which rounding) and
``csrc/core/answer_stream.hpp``. Coordinates: model pixels in, original-image pixels out.

``decode(text, image_w, image_h, model_w, model_h)`` returns the same tuple as ``_native.decode``:
``(ok, error, think, objects)`` with each object
``(box, points, raw_box, raw_points, model_box, model_points)``.
"""

from __future__ import annotations

import math

from ._jsonlite_py import NON_FINITE, NOT_A_NUMBER, JObject, JsonError, parse_numeric_string, parse_value

SEG_ZERO, VISION_REASONER = 0, 1
_MAX_CANDIDATES = 64
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

NO_JSON = (
    'no JSON answer in the text (expected <answer>{"bbox": [x1, y1, x2, y2], "points_1": [x, y], '
    '"points_2": [x, y]}</answer>)'
)
TRUNCATED = "the answer is truncated: <answer> is never closed and holds no complete JSON object"
EMPTY_REGION = "<answer> holds no JSON object"
EMPTY_LIST = "the answer is an empty list"
LIST_ITEM = "the answer list holds an item that is not an object"
NO_BOX = "the answer object has no 'bbox' key"
OUTSIDE = "the box lies entirely outside the image (out of range)"


class _Decoder:
    """One decode call (mirrors segzero::AnswerDecoder)."""

    def __init__(self, text: str, w: float, h: float, mw: float, mh: float) -> None:
        self.s = text
        self.w, self.h = w, h
        self.fx, self.fy = w / mw, h / mh
        self.error: str | None = None
        self.objects: list[tuple] = []

    def record(self, message: str) -> None:
        if self.error is None:
            self.error = message

    # ---- which text ----
    def run(self) -> tuple:
        s = self.s
        n = len(s)
        think = None
        after = 0
        t0 = s.find("<think>")
        if t0 >= 0:
            t1 = s.find("</think>", t0 + 7)
            if t1 >= 0:
                think, after = s[t0 + 7 : t1], t1 + 8
            else:
                a = s.find("<answer>", t0 + 7)
                after = n if a < 0 else a
                think = s[t0 + 7 : after]
        else:
            t1 = s.find("</think>")
            if t1 >= 0:
                think, after = s[:t1], t1 + 8

        a = s.find("<answer>", after)
        if a >= 0:
            rb = a + 8
            close = s.find("</answer>", rb)
            re_ = n if close < 0 else close
            in_list = False
            q = rb
            while q < re_ and s[q] != "{" and s[q] != "[":
                q += 1
            if q < re_ and s[q] == "[":
                in_list = True
                if self.try_list(q, re_):
                    return True, None, think, tuple(self.objects)
            if self.scan_candidates(rb, re_, in_list):
                return True, None, think, tuple(self.objects)
            self.record(TRUNCATED if close < 0 else EMPTY_REGION)

        if self.scan_candidates(0, n, False):
            return True, None, think, tuple(self.objects)
        self.record(NO_JSON)
        return False, self.error, think, ()

    def try_list(self, at: int, end: int) -> bool:
        try:
            root, _ = parse_value(self.s, at, end)
        except JsonError as exc:
            self.record(f"the answer is not valid JSON ({exc.args[0]})")
            return False
        if not root:
            self.record(EMPTY_LIST)
            return False
        for item in root:
            if type(item) is not JObject:
                self.record(LIST_ITEM)
                continue
            obj = self.decode_object(item, True)
            if obj is not None:
                self.objects.append(obj)
        return bool(self.objects)

    def scan_candidates(self, begin: int, end: int, in_list: bool) -> bool:
        s = self.s
        tried = 0
        i = begin
        while i < end:
            i = s.find("{", i, end)
            if i < 0 or i + 1 >= end:
                return False
            if s[i + 1] == "}":  # "{}" never matches {[^}]+}
                i += 1
                continue
            j = s.find("}", i + 1, end)
            if j < 0:
                return False
            tried += 1
            if tried > _MAX_CANDIDATES:
                return False
            try:
                root, _ = parse_value(s, i, j + 1)
            except JsonError as exc:
                self.record(f"the answer is not valid JSON ({exc.args[0]})")
            else:
                obj = self.decode_object(root, in_list)
                if obj is not None:
                    self.objects.append(obj)
                    return True
            i += 1
        return False

    # ---- one object ----
    def decode_object(self, node: JObject, in_list: bool) -> tuple | None:
        members = node.members
        lowered = [k.translate(_ASCII_LOWER) for k, _ in members]

        def last_value(i: int) -> object:
            key = members[i][0]
            value = members[i][1]
            for k, v in members[i + 1 :]:
                if k == key:
                    value = v
            return value

        def first_with(pred) -> int:
            for i in range(len(members)):
                if pred(i):
                    return i
            return -1

        def two_keys(pred, exclude: int) -> list[int]:
            found: list[int] = []
            for i in range(len(members)):
                if len(found) == 2:
                    break
                if not pred(i):
                    continue
                if exclude >= 0 and members[i][0] == members[exclude][0]:
                    continue
                if found and members[i][0] == members[found[0]][0]:
                    continue
                found.append(i)
            return found

        pk = two_keys(lambda i: "points" in lowered[i], -1)
        if len(pk) == 2:  # Seg-Zero schema
            rounding = SEG_ZERO
            bk = first_with(lambda i: "bbox" in lowered[i])
            if bk < 0:
                self.record(NO_BOX)
                return None
            box = self.read_coords(last_value(bk), "bbox", 4, True, rounding)
            if box is None:
                return None
            points = []
            for k, role in enumerate(("points_1", "points_2")):
                pt = self.read_coords(last_value(pk[k]), role, 2, False, rounding)
                if pt is None:
                    return None
                points.append(pt)
            return self.finish(box, points)

        vb = first_with(lambda i: members[i][0] == "bbox_2d") if in_list else -1
        vp = first_with(lambda i: members[i][0] == "point_2d") if in_list else -1
        if vb >= 0 and vp >= 0:  # VisionReasoner schema
            rounding = VISION_REASONER
            box = self.read_coords(last_value(vb), "bbox_2d", 4, False, rounding)
            if box is None:
                return None
            pt = self.read_coords(last_value(vp), "point_2d", 2, False, rounding)
            if pt is None:
                return None
            return self.finish(box, [pt])

        # lenient
        rounding = VISION_REASONER if in_list else SEG_ZERO
        bk = first_with(lambda i: "bbox" in lowered[i])
        if bk < 0:
            bk = first_with(lambda i: "box" in lowered[i])
        if bk < 0:
            self.record(NO_BOX)
            return None
        box = self.read_coords(last_value(bk), "bbox", 4, True, rounding)
        if box is None:
            return None
        ptk = two_keys(lambda i: "point" in lowered[i], bk)
        roles = ("points_1", "points_2")
        points = []
        if len(ptk) == 1:
            v = last_value(ptk[0])
            if type(v) is list and v and type(v[0]) is list:  # "points": [[x, y], [x, y]]
                for k, inner in enumerate(v[:2]):
                    pt = self.read_coords(inner, roles[k], 2, False, rounding)
                    if pt is None:
                        return None
                    points.append(pt)
                return self.finish(box, points)
        for k, i in enumerate(ptk):
            pt = self.read_coords(last_value(i), roles[k], 2, False, rounding)
            if pt is None:
                return None
            points.append(pt)
        return self.finish(box, points)

    def finish(self, box: tuple, points: list) -> tuple | None:
        (raw_box, model_box) = box
        x1, x2 = min(raw_box[0], raw_box[2]), max(raw_box[0], raw_box[2])
        y1, y2 = min(raw_box[1], raw_box[3]), max(raw_box[1], raw_box[3])
        w, h = self.w, self.h
        if x2 < 0 or x1 > w or y2 < 0 or y1 > h:
            self.record(OUTSIDE)
            return None
        final_box = (min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h))
        final_points = tuple((min(max(r[0], 0.0), w), min(max(r[1], 0.0), h)) for r, _ in points)
        return (
            final_box,
            final_points,
            raw_box,
            tuple(r for r, _ in points),
            model_box,
            tuple(m for _, m in points),
        )

    # ---- numbers ----
    def read_coords(self, value: object, role: str, need: int, exact: bool, rounding: int) -> tuple | None:
        """``(raw, model)`` tuples of ``need`` numbers, or None (error recorded)."""
        if type(value) is list or type(value) is str:
            count = len(value)
        else:
            self.record(f"'{role}' is not a list of numbers")
            return None
        if count != need if exact else count < need:
            at_least = "" if exact else "at least "
            self.record(f"'{role}' must hold {at_least}{need} numbers, found {count}")
            return None
        raw = []
        model = []
        for i in range(need):
            x = self.read_number(value[i], role, type(value) is str)
            if x is None:
                return None
            f = self.fx if i % 2 == 0 else self.fy
            if rounding == SEG_ZERO:
                p = math.trunc(x) * f  # round(int(v) * f)
                if not math.isfinite(p):
                    self.record(f"'{role}' holds a number too large to rescale")
                    return None
                r = float(round(p))
            else:
                p = x * f + 0.5  # int(v * f + 0.5)
                if not math.isfinite(p):
                    self.record(f"'{role}' holds a number too large to rescale")
                    return None
                r = float(math.trunc(p))
            model.append(x + 0.0)
            raw.append(r)
        return tuple(raw), tuple(model)

    def read_number(self, x: object, role: str, from_string_char: bool) -> float | None:
        t = type(x)
        if t is float:
            v = x
        elif t is bool:
            v = 1.0 if x else 0.0
        elif t is str:
            status, v = parse_numeric_string(x)
            if status == NOT_A_NUMBER or (from_string_char and status != 0):
                self.record(f"'{role}' holds a value that is not a number")
                return None
            if status == NON_FINITE:
                self.record(f"'{role}' holds a non-finite number")
                return None
        else:
            self.record(f"'{role}' holds a value that is not a number")
            return None
        if not math.isfinite(v):
            self.record(f"'{role}' holds a non-finite number")
            return None
        return v


def decode(text: str, image_w: float, image_h: float, model_w: float, model_h: float) -> tuple:
    """Same contract as ``_native.decode`` (see the module docstring)."""
    return _Decoder(text, image_w, image_h, model_w, model_h).run()
