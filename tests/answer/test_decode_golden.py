"""Golden cases: every decoding behaviour we promise and every decoding quirk of spec section 11.

Expected numbers are worked out by hand in the comments; where the official parser returns a result,
the test also checks it against the re-implemented official parser (tests/answer/official.py).
Each test runs with both backends (the ``decode`` fixture).
"""

from __future__ import annotations

import json

import pytest

from segzero_edge.prompt import SEG_ZERO_EXAMPLE_ANSWER

from .official import seg_zero_parse, vision_reasoner_parse

GOOD = '{"bbox": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}'


def wrap(body: str, think: str = "the cup on the left") -> str:
    return f"<think>{think}</think><answer>{body}</answer>"


def official(text: str, w: int, h: int, m: int = 840):
    return seg_zero_parse(text, w / m, h / m)


def test_exact_answer_rescaled_to_the_image(decode):
    text = wrap(GOOD)
    a = decode(text, (1680, 420))  # fx = 2, fy = 0.5
    assert a.ok and a.error is None
    assert a.box == (20.0, 50.0, 400.0, 105.0)
    assert a.points == ((60.0, 55.0), (70.0, 90.0))
    assert a.think == "the cup on the left"
    assert a.raw_text == text
    assert len(a.objects) == 1 and a.objects[0].box == a.box and a.objects[0].points == a.points
    assert a.objects[0].model_box == (10.0, 100.0, 200.0, 210.0)
    box, points, think = official(text, 1680, 420)
    assert list(a.objects[0].raw_box) == box and [list(p) for p in a.objects[0].raw_points] == points
    assert think == a.think


def test_seg_zero_rounding_truncates_then_rounds_half_to_even(decode):
    # f = 0.5: 5 -> 2.5 -> 2; 7 -> 3.5 -> 4; 9.9 -> int 9 -> 4.5 -> 4; 11 -> 5.5 -> 6
    # points: 1 -> 0.5 -> 0; 3 -> 1.5 -> 2; 13 -> 6.5 -> 6; 15 -> 7.5 -> 8
    text = wrap('{"bbox": [5, 7, 9.9, 11], "points_1": [1, 3], "points_2": [13, 15]}')
    a = decode(text, (420, 420))
    assert a.objects[0].raw_box == (2.0, 4.0, 4.0, 6.0)
    assert a.objects[0].raw_points == ((0.0, 2.0), (6.0, 8.0))
    assert a.objects[0].model_box == (5.0, 7.0, 9.9, 11.0)
    box, points, _ = official(text, 420, 420)
    assert box == [2, 4, 4, 6] and points == [[0, 2], [6, 8]]


def test_vision_reasoner_rounding_adds_half_then_truncates(decode):
    # int(v * 0.5 + 0.5): 5 -> 3; 7 -> 4; 9.9 -> 5.45 -> 5; 11 -> 6; point 1 -> 1; 3 -> 2
    text = wrap('[{"bbox_2d": [5, 7, 9.9, 11], "point_2d": [1, 3]}, {"bbox_2d": [0, 0, 8, 8], "point_2d": [4, 4]}]')
    a = decode(text, (420, 420))
    assert a.ok and len(a.objects) == 2
    assert a.objects[0].raw_box == (3.0, 4.0, 5.0, 6.0) and a.objects[0].raw_points == ((1.0, 2.0),)
    assert a.objects[1].raw_box == (0.0, 0.0, 4.0, 4.0) and a.objects[1].raw_points == ((2.0, 2.0),)
    assert a.box == a.objects[0].box and a.points == a.objects[0].points
    boxes, points = vision_reasoner_parse(text, 0.5, 0.5)
    assert boxes == [[3, 4, 5, 6], [0, 0, 4, 4]] and points == [[1, 2], [2, 2]]


@pytest.mark.parametrize("think", ["", "a < b", "x<y and <z>"])
def test_empty_think_or_angle_bracket_decodes_where_official_crashes(decode, think):
    text = wrap(GOOD, think)
    with pytest.raises(UnboundLocalError):
        official(text, 840, 840)
    a = decode(text)
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0) and a.think == think


def test_wrong_json_in_think_does_not_hijack_the_answer(decode):
    decoy = '{"bbox": [1, 2, 3, 4], "points_1": [1, 1], "points_2": [2, 2]}'
    text = wrap(GOOD, f"maybe {decoy} ... no")
    assert official(text, 840, 840)[0] == [1, 2, 3, 4]  # the official parser reads the think
    a = decode(text)
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0)
    assert a.think == f"maybe {decoy} ... no"


@pytest.mark.parametrize("think", ["set {a", "a } b { c", "{", "{}", "json {'k': 1}"])
def test_braces_in_think(decode, think):
    a = decode(wrap(GOOD, think))
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0) and a.think == think


def test_prompt_single_quoted_example_decodes(decode):
    text = wrap(SEG_ZERO_EXAMPLE_ANSWER)
    with pytest.raises(json.JSONDecodeError):
        official(text, 840, 840)
    a = decode(text)
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0) and a.points == ((30.0, 110.0), (35.0, 180.0))


def test_numbers_ints_floats_and_numeric_strings(decode):
    # Python int(): whitespace, '+', underscores and Unicode digits; decimals truncate like int(float)
    body = '{"bbox": ["10", " 20 ", "3_0", "\u0664\u0660"], ' + '"points_1": [30.9, "+11"], "points_2": ["12.7", 1e1]}'
    a = decode(wrap(body))
    assert a.ok
    assert a.objects[0].raw_box == (10.0, 20.0, 30.0, 40.0)
    assert a.objects[0].raw_points == ((30.0, 11.0), (12.0, 10.0))
    assert a.objects[0].model_points == ((30.9, 11.0), (12.7, 10.0))


def test_numeric_strings_match_official_where_it_succeeds(decode):
    body = '{"bbox": ["10", " 20 ", "3_0", "\u0664\u0660"], "points_1": [30.9, "+11"], "points_2": [" 7", 1e1]}'
    text = wrap(body)
    box, points, _ = official(text, 1000, 500)
    a = decode(text, (1000, 500))
    assert list(a.objects[0].raw_box) == box and [list(p) for p in a.objects[0].raw_points] == points


@pytest.mark.parametrize(
    "body",
    [
        '{" BBox ": [10, 100, 200, 210], "Points 1": [30, 110], "POINTS-2": [35, 180]}',
        '{"bbox_2d": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}',
        '{"bbox": [10, 100, 200, 210], "point_1": [30, 110], "point_2": [35, 180]}',
        '{\n  "bbox" : [10,100,200,210] ,\n  "points_1":[30,110],"points_2" :[35,180]\n}',
        '{"\\u0062box": [10, 100, 200, 210], "points_\\u0031": [30, 110], "points_2": [35, 180]}',
    ],
)
def test_key_spelling_whitespace_and_escapes(decode, body):
    a = decode(wrap(body))
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0) and a.points == ((30.0, 110.0), (35.0, 180.0))


def test_think_is_extracted_whatever_it_contains(decode):
    think = ' {x} <tag> "quoted"\n second line '
    assert decode(wrap(GOOD, think)).think == think
    assert decode(wrap("no json here", think)).think == think  # also when decoding fails
    assert decode(GOOD).think is None
    assert decode("<think>unclosed <answer>" + GOOD).think == "unclosed "
    assert decode("prefilled think</think><answer>" + GOOD + "</answer>").think == "prefilled think"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('<think>t</think><answer>{"bbox": [10, 20, 30', "truncated"),
        ("<think>t</think><answer>", "truncated"),
        ("<think>t</think><answer>nothing</answer>", "holds no JSON"),
        ("<think>just thinking", "no JSON answer"),
        ("", "no JSON answer"),
        (wrap('{"bbox": [NaN, 1, 2, 3], "points_1": [1, 1], "points_2": [2, 2]}'), "non-finite"),
        (wrap('{"bbox": [1e400, 1, 2, 3], "points_1": [1, 1], "points_2": [2, 2]}'), "non-finite"),
        (wrap('{"bbox": [1, 2, 3, 4], "points_1": [Infinity, 1], "points_2": [2, 2]}'), "non-finite"),
        (wrap('{"bbox": ["inf", 1, 2, 3]}'), "non-finite"),
        (wrap('{"bbox": [900, 900, 1000, 1000], "points_1": [1, 1], "points_2": [2, 2]}'), "out of range"),
        (wrap('{"bbox": [-50, -50, -1, -1], "points_1": [1, 1], "points_2": [2, 2]}'), "out of range"),
        (
            wrap('{"bbox": [1, 2, 3, 4, 5], "points_1": [1, 1], "points_2": [2, 2]}'),
            "must hold 4 numbers, found 5",
        ),
        (
            wrap('{"bbox": [1, 2, 3, 4], "points_1": [1], "points_2": [2, 2]}'),
            "'points_1' must hold at least 2",
        ),
        (wrap('{"bbox": [1, 2, null, 4], "points_1": [1, 1], "points_2": [2, 2]}'), "not a number"),
        (wrap('{"bbox": "12345", "points_1": [1, 1], "points_2": [2, 2]}'), "found 5"),
        (wrap('{"box_label": 7}'), "is not a list of numbers"),
        (wrap('{"points_1": [1, 1], "points_2": [2, 2]}'), "no 'bbox' key"),
        (wrap("[]"), "empty list"),
        (wrap('["a"]'), "not an object"),
        (
            wrap('{"bbox": [1,2,3,4], "meta": {"a": 1}, "points_1": [1, 1], "points_2": [2, 2]}'),
            "not valid JSON",
        ),
    ],
)
def test_failures_give_ok_false_with_a_reason(decode, text, fragment):
    a = decode(text)
    assert not a.ok and a.box is None and a.points == () and a.objects == ()
    assert fragment in a.error


def test_overshoot_is_clipped_and_reversed_box_reordered(decode):
    a = decode(wrap('{"bbox": [900, 100, 800, -20], "points_1": [850, 5], "points_2": [-3, 900]}'))
    assert a.ok
    obj = a.objects[0]
    assert obj.raw_box == (900.0, 100.0, 800.0, -20.0)  # the official numbers, untouched
    assert a.box == (800.0, 0.0, 840.0, 100.0)  # reordered first, then clipped to [0, 840]
    assert obj.raw_points == ((850.0, 5.0), (-3.0, 900.0))
    assert a.points == ((840.0, 5.0), (0.0, 840.0))


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        GOOD + "\n",
        "<answer>" + GOOD + "</answer>",
        "<think>x</think>\n\n" + GOOD,
        wrap(f"```json\n{GOOD}\n```"),
    ],
)
def test_answers_without_tags_or_with_extra_text(decode, text):
    a = decode(text)
    assert a.ok and a.box == (10.0, 100.0, 200.0, 210.0)


def test_python_json_specifics(decode):
    # duplicate keys: first position, last value; points with 3 numbers use the first two
    text = wrap('{"bbox": [1, 1, 2, 2], "points_1": [30, 110, 7], "points_2": [35, 180], "bbox": [10, 100, 200, 210]}')
    a = decode(text)
    assert a.box == (10.0, 100.0, 200.0, 210.0) and a.points == ((30.0, 110.0), (35.0, 180.0))
    box, points, _ = official(text, 840, 840)
    assert box == [10, 100, 200, 210] and points == [[30, 110], [35, 180]]


def test_bools_and_character_strings_read_like_python_int(decode):
    # int(True) == 1; the official parser indexes a 4-character string: "1234" -> 1, 2, 3, 4
    text = wrap('{"bbox": "1234", "points_1": [true, false], "points_2": "56"}')
    a = decode(text, (1680, 840))
    assert a.objects[0].raw_box == (2.0, 2.0, 6.0, 4.0)
    assert a.objects[0].raw_points == ((2.0, 0.0), (10.0, 6.0))
    box, points, _ = official(text, 1680, 840)
    assert box == [2, 2, 6, 4] and points == [[2, 0], [10, 6]]


def test_lenient_shapes(decode):
    a = decode(wrap('{"bbox": [10, 100, 200, 210], "points": [[30, 110], [35, 180]]}'))
    assert a.ok and a.points == ((30.0, 110.0), (35.0, 180.0))
    b = decode(wrap('{"bbox": [10, 100, 200, 210]}'))  # a box alone is a usable SAM2 prompt
    assert b.ok and b.points == ()
    c = decode(wrap('{"box": [10, 100, 200, 210], "point": [30, 110]}'))
    assert c.ok and c.box == (10.0, 100.0, 200.0, 210.0) and c.points == ((30.0, 110.0),)


def test_lone_surrogates_and_odd_characters_never_crash(decode):
    a = decode(wrap(GOOD, "\ud800 broken \udc00 \x00 \u2028"))
    assert a.ok and a.think == "\ud800 broken \udc00 \x00 \u2028"
    b = decode(wrap('{"bbox": ["\ud800", 1, 2, 3]}'))
    assert not b.ok


def test_model_size_and_image_size(decode):
    text = wrap('{"bbox": [0, 0, 448, 224], "points_1": [224, 112], "points_2": [1, 1]}')
    a = decode(text, (896, 448), model_size=448)  # f = 2 (x), 1 (y)
    assert a.box == (0.0, 0.0, 896.0, 224.0)
    b = decode(text, None, model_size=(448, 224))  # no image size: model pixels
    assert b.box == (0.0, 0.0, 448.0, 224.0)
