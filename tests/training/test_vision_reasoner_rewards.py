"""VisionReasoner rewards: one case per quirk of segzero_spec.md §10, the TRL wrappers, and a property
test against the independent oracle (vision_reasoner_oracle.py, exhaustive matching)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_edge.training.rewards import (
    REWARD_SETS,
    RewardFunction,
    reward_functions,
    vision_reasoner_reward_components,
)
from segzero_edge.training.vision_reasoner_rewards import MAX_OBJECTS, format_objects_solution

from .vision_reasoner_oracle import oracle_accuracy, oracle_format, oracle_non_repeat

A = {"bbox_2d": [100, 100, 300, 300], "point_2d": [200, 200]}
B = {"bbox_2d": [500, 400, 700, 800], "point_2d": [600, 600]}
GT = json.dumps([A, B])


def wrap(objects, think="the two shapes"):
    return f"<think>{think}</think><answer>{json.dumps(objects)}</answer>"


def test_exact_answer_scores_seven_in_either_order():
    for objects in ([A, B], [B, A]):
        got = vision_reasoner_reward_components(wrap(objects), GT)
        assert got == {"format": 3.0, "accuracy": 3.0, "non_repeat": 1.0}
        assert sum(got.values()) == 7.0


def test_missing_and_extra_objects_divide_by_the_larger_count():
    assert vision_reasoner_reward_components(wrap([A]), GT)["accuracy"] == 1.5
    assert vision_reasoner_reward_components(wrap([A, B, B]), GT)["accuracy"] == 2.0


def test_touching_boxes_intersect_with_the_plus_one_convention():
    # IoU of [0,0,9,9] and [9,0,18,9] is 10/190 with +1 and max(0, .): no strict ix1 < ix2 test
    from segzero_edge.training.vision_reasoner_rewards import box_iou_plus_one

    assert box_iou_plus_one([0, 0, 9, 9], [9, 0, 18, 9]) == pytest.approx(10 / 190)
    assert box_iou_plus_one([0, 0, 9, 9], [10, 0, 19, 9]) == 0.0


def test_the_point_reward_needs_the_point_inside_its_own_box():
    gt = json.dumps([{"bbox_2d": [100, 100, 300, 300], "point_2d": [105, 200]}])
    outside = {"bbox_2d": [110, 100, 300, 300], "point_2d": [105, 200]}  # point left of its own box
    # IoU > 0.5 and L1 2.5 < 10 but no point reward
    assert vision_reasoner_reward_components(wrap([outside]), gt)["accuracy"] == 2.0
    edge = {"bbox_2d": [105, 100, 300, 300], "point_2d": [105, 200]}  # on the edge: inclusive
    assert vision_reasoner_reward_components(wrap([edge]), gt)["accuracy"] == 3.0


def test_non_repeat_is_the_integer_zero_after_two_repeats():
    once = vision_reasoner_reward_components(wrap([A, B], think="a cup. a cup. a plate"), GT)["non_repeat"]
    twice = vision_reasoner_reward_components(wrap([A, B], think="x. a cup. a cup. a cup. so"), GT)["non_repeat"]
    assert once == 1.0 and isinstance(once, float)
    assert twice == 0 and type(twice) is int


def test_schema_score_per_object_and_format_failures():
    half = wrap([A, {"bbox_2d": [1, 2, 3], "point_2d": [1, 2]}])  # 2 + 1 of 4 -> 1.5
    assert vision_reasoner_reward_components(half, GT)["format"] == 1.0 + 1.5
    assert vision_reasoner_reward_components(" " + wrap([A]), GT)["format"] == 2.0  # no think fullmatch
    assert vision_reasoner_reward_components("<think>x</think><answer>[{'bbox_2d': [1]}]</answer>", GT)["format"] == 1.0
    empty = vision_reasoner_reward_components("<think>x</think><answer>[]</answer>", GT)
    assert empty == {"format": 1.0, "accuracy": 0.0, "non_repeat": 1.0}
    # both empty: 0 / 0 is a failure, scored 0
    assert vision_reasoner_reward_components("<think>x</think><answer>[]</answer>", "[]")["accuracy"] == 0.0


def test_at_most_120_objects_per_side():
    many = [A] * (MAX_OBJECTS + 30)
    got = vision_reasoner_reward_components(wrap(many), json.dumps([A]))
    assert got["accuracy"] == pytest.approx(3.0 / MAX_OBJECTS)


def test_trl_wrappers_sum_to_the_official_total():
    fns = reward_functions("vision_reasoner", input_size=840)
    assert [f.__name__ for f in fns] == ["format", "accuracy", "non_repeat"] and "vision_reasoner" in REWARD_SETS
    completions = [[{"role": "assistant", "content": wrap([A, B])}], wrap([A])]
    totals = [sum(v) for v in zip(*(f(completions, solution=[GT, GT]) for f in fns))]
    assert totals == [7.0, 3.0 + 1.5 + 1.0]
    with pytest.raises(Exception, match="unknown reward component"):
        RewardFunction("bbox_iou", "vision_reasoner", 840)
    assert format_objects_solution([((1, 2, 3, 4), (2, 3))]) == '[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]'


coord = st.integers(0, 120)
obj = st.builds(
    lambda x1, y1, w, h, px, py: {"bbox_2d": [x1, y1, x1 + w, y1 + h], "point_2d": [px, py]},
    coord,
    coord,
    st.integers(0, 60),
    st.integers(0, 60),
    st.integers(0, 180),
    st.integers(0, 180),
)


@settings(max_examples=300, deadline=None)
@given(
    preds=st.lists(obj, max_size=4),
    gts=st.lists(obj, max_size=4),
    think=st.sampled_from(["a. b", "a. a. a", "x", ""]),
    junk=st.sampled_from(["", " ", "x"]),
)
def test_property_equals_the_oracle(preds, gts, think, junk):
    text = junk + wrap(preds, think)
    sol = json.dumps(gts)
    got = vision_reasoner_reward_components(text, sol)
    assert got["format"] == oracle_format(text)
    assert got["accuracy"] == pytest.approx(oracle_accuracy(text, sol))
    assert got["non_repeat"] == oracle_non_repeat(text)
