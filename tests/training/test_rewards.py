"""Seg-Zero rewards: the golden table of segzero_spec.md §3.3, one case per quirk, and a property test
against an oracle written independently from the spec (seg_zero_oracle.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_edge.training.rewards import (
    COMPONENTS,
    SEG_ZERO_THRESHOLDS,
    RewardFunction,
    format_solution,
    parse_solution,
    reward_functions,
    robust_reward_components,
    seg_zero_reward,
    seg_zero_reward_components,
    thresholds_for,
)

from .seg_zero_oracle import oracle

GT = "<box>(100,100),(300,300)</box><points>(150,150),(250,250)</points>"
EXACT = '{"bbox": [100,100,300,300], "points_1": [150,150], "points_2": [250,250]}'


def wrap(answer: str, think: str = "the cup on the left") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def comps(text: str, strict: bool = True, gt: str = GT) -> tuple[float, ...]:
    got = seg_zero_reward_components(text, gt, strict)
    assert list(got) == list(COMPONENTS)
    return tuple(got.values())


# (name, completion, strict total, soft total) — the table of segzero_spec.md §3.3
GOLDEN = [
    ("exact answer", wrap(EXACT), 5, 5),
    ("prompt-style single quotes", wrap(EXACT.replace('"', "'")), 1, 1),
    ("braces (invalid JSON) in the think", wrap(EXACT, think="the {red} cup"), 1, 1),
    (
        "valid wrong JSON in the think is scored instead",
        wrap(EXACT, think='{"bbox": [0,0,10,10], "points_1": [1,1], "points_2": [2,2]}'),
        2,
        2,
    ),
    ("bare JSON, no tags", EXACT, 4, 4),
    ("answer only", f"<answer>{EXACT}</answer>", 4, 4),
    ("trailing newline", wrap(EXACT) + "\n", 4, 4),
    ("key Bbox", wrap(EXACT.replace('"bbox"', '"Bbox"')), 1, 5),
    ("key bbox_2d", wrap(EXACT.replace('"bbox"', '"bbox_2d"')), 1, 5),
    ("keys point_1/point_2", wrap(EXACT.replace('"points_', '"point_')), 3, 4),
    ("bbox with 5 numbers", wrap(EXACT.replace("[100,100,300,300]", "[100,100,300,300,5]")), 1, 1),
    ("points_1 with 3 numbers", wrap(EXACT.replace("[150,150]", "[150,150,7]")), 4, 4),
    ("NaN in the box", wrap(EXACT.replace("[100,100,300,300]", "[NaN,100,300,300]")), 2, 2),
    ("Infinity in the box", wrap(EXACT.replace("[100,100,300,300]", "[100,100,Infinity,300]")), 3, 3),
    (
        "numeric strings in the box",
        wrap(EXACT.replace("[100,100,300,300]", '["100","100","300","300"]')),
        2,
        2,
    ),
    (
        "numeric strings in the points only",
        wrap(EXACT.replace("[150,150]", '["150","150"]').replace("[250,250]", '["250","250"]')),
        5,
        5,
    ),
    ("reversed box", wrap(EXACT.replace("[100,100,300,300]", "[300,300,100,100]")), 2, 2),
    ("truncated generation", '<think>x</think><answer>{"bbox": [100,100,300', 0, 0),
    ("duplicate bbox keys: the last wins", wrap('{"bbox": [0,0,1,1], ' + EXACT[1:]), 5, 5),
]


@pytest.mark.parametrize(("name", "text", "strict_total", "soft_total"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_table(name, text, strict_total, soft_total):
    assert seg_zero_reward(text, GT, strict=True) == strict_total
    assert seg_zero_reward(text, GT, strict=False) == soft_total
    assert comps(text) == tuple(oracle(text, GT, True).values())
    assert comps(text, strict=False) == tuple(oracle(text, GT, False).values())


def test_golden_components_of_key_cases():
    # which components fire, not only the totals
    assert comps(wrap(EXACT.replace('"points_', '"point_'))) == (1, 0, 1, 1, 0)
    assert comps(wrap(EXACT.replace('"points_', '"point_')), strict=False) == (1, 1, 1, 1, 0)
    assert comps(wrap(EXACT.replace("[150,150]", "[150,150,7]"))) == (1, 0, 1, 1, 1)
    assert comps(wrap(EXACT.replace("[100,100,300,300]", "[100,100,Infinity,300]"))) == (1, 1, 0, 0, 1)


def test_thinking_format_is_a_full_match():
    assert comps(" " + wrap(EXACT))[0] == 0  # leading whitespace
    assert comps(wrap(EXACT).replace("</think>", "</think> \n\t "))[0] == 1  # whitespace between the blocks
    assert comps(wrap(EXACT).replace("</think>", "</think>so"))[0] == 0  # text between the blocks
    assert comps("<think>a</think><answer>x</answer><answer>y</answer>")[0] == 1  # duplicate tags pass
    assert comps("<think>a<think>b</think></think><answer>x</answer>")[0] == 1  # nested tags pass
    assert comps(wrap(EXACT).replace("<think>", "<Think>").replace("</think>", "</Think>"))[0] == 0
    assert comps("<think>\nmulti\nline\n</think>\n<answer>\n" + EXACT + "\n</answer>")[0] == 1


def test_iou_threshold_is_strict_and_uses_inclusive_pixels():
    gt = "<box>(0,0),(9,9)</box><points>(2,2),(7,7)</points>"  # 10x10 = 100 pixels
    half = '{"bbox": [0,0,9,4], "points_1": [2,2], "points_2": [7,3]}'  # 10x5: IoU exactly 0.5
    more = '{"bbox": [0,0,9,5], "points_1": [2,2], "points_2": [7,3]}'  # IoU 0.6
    assert comps(wrap(half), gt=gt)[2] == 0
    assert comps(wrap(more), gt=gt)[2] == 1


def test_iou_needs_a_strictly_positive_intersection_even_for_an_exact_match():
    # a one-pixel box: ix1 == ix2, so the intersection counts as 0 although the boxes are identical
    gt = "<box>(5,5),(5,5)</box><points>(5,5),(5,5)</points>"
    text = wrap('{"bbox": [5,5,5,5], "points_1": [5,5], "points_2": [5,5]}')
    assert comps(text, gt=gt) == (1, 1, 0, 1, 1)


def test_box_l1_threshold_is_strict():
    exactly_10 = EXACT.replace("[100,100,300,300]", "[110,110,310,310]")
    just_under = EXACT.replace("[100,100,300,300]", "[109,110,310,310]")  # mean 9.75
    assert comps(wrap(exactly_10))[3] == 0
    assert comps(wrap(just_under))[3] == 1


def test_point_distance_is_euclidean_best_pairing_threshold_100():
    # swapped order: the better of the two pairings is used
    swapped = EXACT.replace(
        '"points_1": [150,150], "points_2": [250,250]', '"points_1": [250,250], "points_2": [150,150]'
    )
    assert comps(wrap(swapped))[4] == 1
    # each point exactly 100 px from its ground truth (60-80-100 triangles; L1 would be 140) -> 0
    gt = "<box>(0,0),(800,800)</box><points>(100,100),(700,700)</points>"
    answer = '{"bbox": [0,0,800,800], "points_1": [%d,180], "points_2": [640,620]}'
    assert math.isclose(math.hypot(60, 80), 100)
    assert comps(wrap(answer % 160), gt=gt)[4] == 0
    assert comps(wrap(answer % 159), gt=gt)[4] == 1  # mean of 99.4 and 100


def test_points_are_truncated_before_the_inclusive_in_box_test():
    # 300.9 truncates to 300 == x2: inside. 301 is outside.
    inside = EXACT.replace("[250,250]", "[300.9,250]")
    outside = EXACT.replace("[250,250]", "[301,250]")
    assert comps(wrap(inside))[4] == 1
    assert comps(wrap(outside))[4] == 0
    # int(-0.5) == 0 with a box starting at 0
    gt = "<box>(0,0),(20,20)</box><points>(0,0),(10,10)</points>"
    text = wrap('{"bbox": [0,0,20,20], "points_1": [-0.5,0], "points_2": [10,10]}')
    assert comps(text, gt=gt)[4] == 1


def test_json_specifics():
    escaped = wrap(EXACT.replace('"bbox"', '"\\u0062box"'))  # \u escapes in keys are decoded
    assert seg_zero_reward(escaped, GT) == 5
    any_types = wrap('{"bbox": ["a","b","c","d"], "points_1": [1,2], "points_2": [3,4]}')
    assert comps(any_types)[:2] == (1, 1)  # element types are not checked by the format reward


def test_soft_key_matching():
    keys = wrap('{"BBOX": [100,100,300,300], "Points_A": [150,150], "pointsB": [250,250]}')
    assert comps(keys, strict=False) == (1, 1, 1, 1, 1)
    assert comps(keys, strict=True) == (1, 0, 0, 0, 0)
    string_box = wrap('{"bbox": "abcd", "point_1": [1,1], "point_2": [2,2]}')
    assert comps(string_box, strict=False)[1] == 1  # soft: a 4-character string passes as a box


def test_malformed_ground_truth_only_kills_the_geometry_rewards():
    bad = "<box>(100, 100),(300,300)</box><points>(150,150),(250,250)</points>"  # a space
    assert comps(wrap(EXACT), gt=bad) == (1, 1, 0, 0, 1)
    assert comps(wrap(EXACT), gt="nothing") == (1, 1, 0, 0, 0)


def test_solution_round_trip():
    assert format_solution((0, 457, 374, 672), [(50, 592), (144, 601)]) == (
        "<box>(0,457),(374,672)</box><points>(50,592),(144,601)</points>"
    )
    assert parse_solution(GT) == ([100, 100, 300, 300], [[150, 150], [250, 250]])
    assert parse_solution("junk") == (None, None)


def test_trl_reward_functions_one_per_component():
    funcs = reward_functions("strict", input_size=840)
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    completions = [[{"role": "assistant", "content": wrap(EXACT)}], [{"role": "assistant", "content": EXACT}]]
    kwargs = {"prompts": [None, None], "solution": [GT, GT], "trainer_state": None, "image": [None, None]}
    assert [f(completions=completions, **kwargs) for f in funcs] == [[1, 0], [1, 1], [1, 1], [1, 1], [1, 1]]
    plain = reward_functions("soft", input_size=840)[1](completions=[EXACT.replace("bbox", "Bbox")], solution=[GT])
    assert plain == [1.0]
    with pytest.raises(ValueError, match="solution"):
        funcs[0](completions=completions)
    with pytest.raises(ValueError, match="reward set"):
        RewardFunction("bbox_iou", "lenient", 840)


def test_scaled_thresholds_follow_the_input_size():
    """``scaled`` multiplies the two pixel thresholds by input/840: equal to Seg-Zero's at 840, stricter below."""
    assert thresholds_for("absolute", 224) == SEG_ZERO_THRESHOLDS
    assert thresholds_for("scaled", 840) == SEG_ZERO_THRESHOLDS
    small = thresholds_for("scaled", 224)
    assert small.iou == 0.5
    assert small.box_l1 == pytest.approx(10 * 224 / 840) and small.point_distance == pytest.approx(100 * 224 / 840)
    with pytest.raises(ValueError, match="threshold mode"):
        thresholds_for("relative", 224)
    # a box 5 px off on every corner, points 20 or 50 px from the ground truth (224-px world)
    gt = "<box>(40,40),(100,100)</box><points>(60,60),(80,80)</points>"
    near = wrap('{"bbox": [45,45,105,105], "points_1": [60,80], "points_2": [80,80]}')  # points 20 / 0 px off
    far = wrap('{"bbox": [45,45,145,145], "points_1": [110,60], "points_2": [80,130]}')  # 50 / 50 px off
    assert tuple(seg_zero_reward_components(near, gt).values()) == (1, 1, 1, 1, 1)
    assert tuple(seg_zero_reward_components(near, gt, thresholds=small).values()) == (1, 1, 1, 0, 1)
    assert tuple(seg_zero_reward_components(far, gt).values())[4] == 1
    assert tuple(seg_zero_reward_components(far, gt, thresholds=small).values())[4] == 0
    assert tuple(robust_reward_components(near, gt, 224, small).values()) == (1, 1, 1, 0, 1)
    # the TRL functions carry the mode
    funcs = reward_functions("strict", input_size=224, thresholds="scaled")
    assert [f(completions=[near], solution=[gt])[0] for f in funcs] == [1, 1, 1, 0, 1]
    assert [f(completions=[near], solution=[gt])[0] for f in reward_functions("strict", input_size=224)] == [1] * 5
    assert "thresholds='scaled'" in repr(funcs[0])


# ------------------------------------------------------------------------------------------------
# Property test: implementation == oracle on generated completions
# ------------------------------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(-20, 900),
    st.floats(-20, 900, allow_nan=False).map(lambda v: round(v, 1)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '"150"', '"x"', "null", "true", "[1,2]"]),
)
_keys = st.sampled_from(["bbox", "Bbox", "bbox_2d", "points_1", "points_2", "point_1", "point_2", "Points_x", "label"])


@st.composite
def _answer(draw):
    kind = draw(st.integers(0, 2))
    if kind == 0:  # close to the ground truth: every reward can fire
        noise = st.integers(-15, 15)
        box = [v + draw(noise) for v in (100, 100, 300, 300)]
        p1, p2 = [[v + draw(noise) * 4 for v in p] for p in ([150, 150], [250, 250])]
        return json.dumps({"bbox": box, "points_1": p1, "points_2": p2})
    if kind == 1:  # mutations of a well-formed answer near the ground truth
        spec = [("bbox", [100, 100, 300, 300]), ("points_1", [150, 150]), ("points_2", [250, 250])]
        spec = [(draw(_keys) if draw(st.integers(0, 9)) == 0 else k, v) for k, v in spec]
        fields = []
        for key, base in spec:
            n = len(base) + draw(st.sampled_from([0] * 8 + [-1, 1]))
            vals = [
                str(base[i % len(base)] + draw(st.sampled_from([0, 0, 3, -8, 12, 60, -110, 150])))
                if draw(st.integers(0, 11))
                else str(draw(_numbers))
                for i in range(max(n, 0))
            ]
            fields.append(f'"{key}": [' + ",".join(vals) + "]")
        body = "{" + ", ".join(draw(st.permutations(fields))) + "}"
    else:
        items = []
        for _ in range(draw(st.integers(0, 5))):
            key = draw(_keys)
            vals = [str(draw(_numbers)) for _ in range(draw(st.integers(1, 5)))]
            value = "[" + ",".join(vals) + "]" if draw(st.integers(0, 9)) else draw(st.sampled_from(['"abcd"', "12"]))
            items.append(f'"{key}": {value}')
        body = "{" + ", ".join(items) + "}"
    if draw(st.integers(0, 9)) == 0:
        body = body.replace('"', "'")
    return body


@st.composite
def _completion(draw):
    answer = draw(_answer())
    think = draw(st.sampled_from(["look", "the {x} one", "", '{"bbox": [100,100,300,300]}', "a\nb"]))
    shape = draw(st.integers(0, 4))
    if shape == 0:
        return answer
    if shape == 1:
        return f"<think>{think}</think><answer>{answer}</answer>"
    if shape == 2:
        return f"<think>{think}</think>\n<answer>{answer}</answer>\n"
    if shape == 3:
        return f"<think>{think}</think><answer>{answer[: len(answer) // 2]}"
    return f"{think} {answer} <answer></answer>"


def test_matches_oracle():
    seen: set[tuple[str, float]] = set()

    @settings(max_examples=600, deadline=None, derandomize=True)
    @given(
        _completion(),
        st.booleans(),
        st.sampled_from([GT, "<box>(0,0),(899,899)</box><points>(1,1),(2,2)</points>", "x"]),
    )
    def check(text, strict, gt):
        got = seg_zero_reward_components(text, gt, strict)
        assert got == oracle(text, gt, strict)
        seen.update(got.items())

    check()
    # the generated completions reach both values of every component (the comparison is not vacuous)
    assert seen == {(name, value) for name in COMPONENTS for value in (0.0, 1.0)}


# ------------------------------------------------------------------------------------------------
# Robust set: the answer decoder reads the <answer> block
# ------------------------------------------------------------------------------------------------

# (name, completion, robust components): where the decoder differs from the first-brace reading
ROBUST = [
    ("exact answer", wrap(EXACT), (1, 1, 1, 1, 1)),
    ("prompt-style single quotes parse", wrap(EXACT.replace('"', "'")), (1, 1, 1, 1, 1)),
    ("braces in the think are ignored", wrap(EXACT, think="the {red} cup"), (1, 1, 1, 1, 1)),
    (
        "a JSON in the think does not hijack the answer",
        wrap(EXACT, think='{"bbox": [0,0,10,10], "points_1": [1,1], "points_2": [2,2]}'),
        (1, 1, 1, 1, 1),
    ),
    (
        "reversed box is reordered",
        wrap(EXACT.replace("[100,100,300,300]", "[300,300,100,100]")),
        (1, 1, 1, 1, 1),
    ),
    (
        "numeric strings parse",
        wrap(EXACT.replace("[100,100,300,300]", '["100","100","300","300"]')),
        (1, 1, 1, 1, 1),
    ),
    ("NaN is rejected", wrap(EXACT.replace("[100,100,300,300]", "[NaN,100,300,300]")), (1, 0, 0, 0, 0)),
    (
        "Infinity is rejected",
        wrap(EXACT.replace("[100,100,300,300]", "[100,100,Infinity,300]")),
        (1, 0, 0, 0, 0),
    ),
    ("trailing newline still fails the think format", wrap(EXACT) + "\n", (0, 1, 1, 1, 1)),
    ("truncated generation", '<think>x</think><answer>{"bbox": [100,100,300', (0, 0, 0, 0, 0)),
    (
        "box clipped to the image",
        wrap(EXACT.replace("[100,100,300,300]", "[100,100,300,3000]")),
        (1, 1, 0, 0, 1),
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), ROBUST, ids=[r[0] for r in ROBUST])
def test_robust_set(name, text, expected):
    from segzero_edge.training.rewards import robust_reward_components

    assert tuple(robust_reward_components(text, GT, input_size=840).values()) == expected


def test_robust_set_agrees_with_strict_on_clean_answers():
    """Where the official reading is unambiguous (one JSON object, integers, ordered in-image box),
    the robust set scores exactly like the strict one."""
    from segzero_edge.training.rewards import robust_reward_components

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.lists(st.integers(0, 839), min_size=8, max_size=8), st.sampled_from(["", "\n"]))
    def check(v, gap):
        box = [min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])]
        text = wrap(json.dumps({"bbox": box, "points_1": v[4:6], "points_2": v[6:8]})).replace(
            "</think>", "</think>" + gap
        )
        assert robust_reward_components(text, GT, 840) == seg_zero_reward_components(text, GT, True)

    check()


def test_robust_trl_functions():
    funcs = reward_functions("robust", input_size=840)
    out = [f(completions=[wrap(EXACT.replace('"', "'"))], solution=[GT]) for f in funcs]
    assert out == [[1.0]] * 5
