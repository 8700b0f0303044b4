"""Parity: native decoder == pure-Python twin (100k+ strings), and both == the official parsers wherever
those return a result (tests/answer/official.py, re-implemented from the spec)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segzero_edge.answer import _answer_py
from segzero_edge.answer import decode as answer
from segzero_edge.answer._jsonlite_py import NUMBER_OK, parse_numeric_string

from . import gen
from .conftest import needs_native
from .official import seg_zero_parse, vision_reasoner_parse

native = answer._native


def _outside(box, w, h) -> bool:
    x1, x2 = min(box[0], box[2]), max(box[0], box[2])
    y1, y2 = min(box[1], box[3]), max(box[1], box[3])
    return x2 < 0 or x1 > w or y2 < 0 or y1 > h


@needs_native
def test_native_equals_python_on_100k_generated_and_mutated_strings():
    rng = random.Random(20250403)
    mismatches = []
    ok = 0
    n = 100_000
    for _ in range(n):
        text = gen.any_text(rng)
        w, h, mw, mh = gen.sizes(rng)
        a = native.decode(text, w, h, mw, mh)
        b = _answer_py.decode(text, w, h, mw, mh)
        ok += a[0]
        if a != b:
            mismatches.append((text, (w, h, mw, mh), a, b))
            if len(mismatches) >= 5:
                break
    assert not mismatches, "\n".join(repr(m) for m in mismatches)
    # the corpus exercises both outcomes, not only failures
    assert 0.15 * n < ok < 0.85 * n


@needs_native
def test_native_equals_python_on_long_and_hostile_texts():
    rng = random.Random(7)
    texts = [
        "{" * 5000 + "}",
        '{"a": [' * 3000 + "1" + "]" * 3000 + ', "bbox": [1, 2, 3, 4]}',
        "<think>" + "x" * 100_000 + "</think><answer>" + '{"bbox": [1, 2, 3, 4]}' * 200 + "</answer>",
        "{[" * 2000 + "}",
        '{"bbox": [' + "9" * 400 + ", 1, 2, 3]}",
        '{"bbox": ["' + "0" * 5000 + '1", 1, 2, 3]}',
        "".join(rng.choice("{}[]\"',: ") for _ in range(20_000)),
    ]
    for _ in range(200):
        texts.append("".join(gen.any_text(rng) for _ in range(rng.randrange(2, 30))))
    for text in texts:
        assert native.decode(text, 640, 480, 840, 840) == _answer_py.decode(text, 640, 480, 840, 840)


def test_official_seg_zero_parity_wherever_it_returns():
    """Where Seg-Zero's parser returns a result, ours returns the same numbers (raw_box/raw_points,
    i.e. before reordering/clipping), unless the box lies entirely outside the image (then ok=False)."""
    rng = random.Random(11)
    compared = outside = 0
    for _ in range(20_000):
        text = gen.realistic(rng, braces_in_think=False, multi=0.05)
        w, h, mw, mh = gen.sizes(rng)
        try:
            box, points, think = seg_zero_parse(text, w / mw, h / mh)
        except Exception:
            continue
        ours = answer._BACKENDS[answer.BACKEND](text, w, h, mw, mh)
        if not ours.ok:
            assert "out of range" in ours.error and _outside(box, w, h), (text, ours.error)
            outside += 1
            continue
        compared += 1
        obj = ours.objects[0]
        assert list(obj.raw_box) == box, text
        assert [list(p) for p in obj.raw_points] == points, text
        if text.find("<think>") == text.find("<think>" + think):
            assert ours.think == think
    assert compared > 3000 and outside > 100


def test_official_vision_reasoner_parity_wherever_it_returns():
    rng = random.Random(12)
    compared = 0
    for _ in range(8000):
        body = gen.vision_reasoner_json(rng)
        think = gen.think_text(rng, braces=False)
        text = f"<think>{think}</think>{rng.choice(['', chr(10)])}<answer>{body}</answer>"
        w, h, mw, mh = gen.sizes(rng)
        try:
            boxes, points = vision_reasoner_parse(text, w / mw, h / mh)
        except Exception:
            continue
        ours = answer._BACKENDS[answer.BACKEND](text, w, h, mw, mh)
        expected = [(b, p) for b, p in zip(boxes, points) if not _outside(b, w, h)]
        if not expected:
            assert not ours.ok
            continue
        compared += 1
        assert ours.ok, (text, ours.error)
        got = [(list(o.raw_box), list(o.raw_points[0])) for o in ours.objects]
        assert got == [(list(map(float, b)), list(map(float, p))) for b, p in expected], text
        assert ours.box == ours.objects[0].box
    assert compared > 2000


def test_json_numbers_are_read_correctly_rounded():
    """model_box holds the parsed JSON numbers: they must equal Python's float() of the literal."""
    rng = random.Random(3)
    for _ in range(3000):
        lits = []
        for _ in range(4):
            mant = str(rng.randrange(10 ** rng.randrange(1, 25)))
            frac = "." + str(rng.randrange(10 ** rng.randrange(1, 30))) if rng.random() < 0.7 else ""
            exp = f"e{rng.randrange(-330, 300)}" if rng.random() < 0.5 else ""
            lits.append(("-" if rng.random() < 0.3 else "") + mant + frac + exp)
        text = '{"bbox": [' + ", ".join(lits) + "]}"
        values = [float(x) for x in lits]
        ours = answer._BACKENDS[answer.BACKEND](text, 840, 840, 840, 840)
        if ours.ok:
            assert ours.objects[0].model_box == tuple(v + 0.0 for v in values), text
        else:
            assert "out of range" in ours.error or not all(math.isfinite(v) for v in values)


def test_numeric_strings_read_like_python_int():
    rng = random.Random(5)
    alphabet = "0123456789 _+-\t\n\x0b\x0c\r\x1c\xa0\u2003\u3000\u0660\u0663\u0967\uff11\U0001d7ce.xe"
    checked = 0
    for _ in range(20_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 8)))
        status, value = parse_numeric_string(s)
        try:
            expected = float(int(s))
        except ValueError:
            continue
        checked += 1
        assert status == NUMBER_OK and value == expected, repr(s)
    assert checked > 2000


@needs_native
@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.integers(1, 5000), st.integers(1, 5000))
def test_hypothesis_any_text_never_raises_and_backends_agree(text, w, h):
    a = native.decode(text, w, h, 840, 840)
    assert a == _answer_py.decode(text, w, h, 840, 840)
    if a[0]:
        for box, points, *_ in a[3]:
            assert 0 <= box[0] <= box[2] <= w and 0 <= box[1] <= box[3] <= h
            assert all(0 <= x <= w and 0 <= y <= h for x, y in points)


_coordinate = st.one_of(
    st.integers(-2000, 3000),
    st.floats(-2000, 3000, allow_nan=False),
    st.integers(0, 900).map(str),
    st.booleans(),
    st.sampled_from([None, float("nan"), float("inf")]),
)
_key = st.sampled_from(["bbox", "Bbox", " bbox", "bbox_2d", "points_1", "points_2", "Points 2", "point_1", "x"])


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    st.dictionaries(_key, st.lists(_coordinate, min_size=0, max_size=5), min_size=1, max_size=5),
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.sampled_from(["", "x", "a < b"]),
)
def test_hypothesis_official_parity_on_json_dicts(data, w, h, think):
    text = f"<think>{think}</think><answer>{json.dumps(data)}</answer>"
    ours = answer._BACKENDS[answer.BACKEND](text, w, h, 840, 840)
    try:
        box, points, _ = seg_zero_parse(text, w / 840, h / 840)
    except Exception:
        return
    if not ours.ok:
        assert "out of range" in ours.error and _outside(box, w, h)
        return
    assert list(ours.objects[0].raw_box) == box
    assert [list(p) for p in ours.objects[0].raw_points] == points


@pytest.mark.parametrize("backend", ["native", "python"])
def test_decode_answer_public_backends_agree(backend):
    if backend not in answer._BACKENDS:
        pytest.skip("segzero_edge._native is not built")
    rng = random.Random(9)
    for _ in range(500):
        text = gen.any_text(rng)
        w, h, mw, mh = gen.sizes(rng)
        assert answer._BACKENDS[backend](text, w, h, mw, mh) == answer._BACKENDS["python"](text, w, h, mw, mh)
