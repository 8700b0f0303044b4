"""LENS's prompt (byte for byte) and its answer rule, without any model."""

from __future__ import annotations

import pytest

from segzero_edge import prompt
from segzero_edge.answer.lens import decode_lens_answer, lens_box
from segzero_edge.errors import EngineIncompatibleError, InputError

# Typed from hustvl/LENS src/open_r1/constants.py (question_template_registry, QWEN2_SYS), independently of
# segzero_edge.prompt: "pr1_grounding" and "samr1_v4" (sentences concatenated without spaces).
GROUNDING = "Output the bounding box of the {question} in the image."
COT = (
    'Locate "{question}", report the bbox coordinates in JSON format.Compare the difference between objects and '
    "find the most closely matched one.Output the thinking process in <think> </think> and final answer in "
    "<answer> </answer> tags.Output the one bbox inside the interested object in JSON format.i.e., "
    "<think>thinking process here</think><answer>answer here</answer>"
)


def test_templates_and_system_prompt_byte_for_byte():
    assert prompt.LENS_SYSTEM_PROMPT == "You are a helpful assistant. "
    assert prompt.user_text("the Red cup.", "lens") == GROUNDING.format(question="the Red cup.")  # not normalised
    assert prompt.user_text("x", "lens", template="cot") == COT.format(question="x")
    assert prompt.render_chat("a cup", family="lens").startswith(
        "<|im_start|>system\nYou are a helpful assistant. <|im_end|>\n<|im_start|>user\n<|vision_start|>"
    )
    with pytest.raises(InputError, match="unknown LENS prompt template"):
        prompt.user_text("x", "lens", template="samr1_v5")
    with pytest.raises(InputError, match="templates are for the LENS family"):
        prompt.user_text("x", "seg_zero", template="cot")


def test_chat_rendering_equals_transformers_with_the_lens_system_turn(tiny_qwen_dir):
    from segzero_edge.reference.qwen import load_qwen_processor

    proc = load_qwen_processor(tiny_qwen_dir)
    for template in ("grounding", "cot"):
        messages = prompt.chat_messages("the cup {x} <|im_end|>", "lens", template=template)
        assert messages[0] == {"role": "system", "content": "You are a helpful assistant. "}
        rendered = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert rendered == prompt.render_chat("the cup {x} <|im_end|>", family="lens", template=template)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("the cup(10,20),(110,220)", (10, 20, 110, 220)),  # Qwen grounding, box tokens skipped
        ("(1.5, 2, 3, 4.25) then [5,6,7,8]", (5, 6, 7, 8)),  # [..] anywhere wins over an earlier (..)
        ("(1,2,3,4) and (5,6),(7,8)", (1, 2, 3, 4)),  # (a,b,c,d) before (a,b),(c,d)
        ("<think>[1,1,2,2]</think><answer>[3,3,4,4]</answer>", (1, 1, 2, 2)),  # the whole text, as LENS
        ("[-5, 10, 50,60]", (-5, 10, 50, 60)),
    ],
)
def test_lens_box_rule(text, written):
    assert lens_box(text) == written


@pytest.mark.parametrize("text", ["", "no box", "[1,2,3]", "(1,2),(3)", "[1e3,2,3,4]", "[1,2,3,4,5]"])
def test_no_box_is_not_ok_and_never_raises(text):
    ans = decode_lens_answer(text, (200, 100), 112)
    assert not ans.ok and ans.box is None and "no box" in ans.error and ans.raw_text == text


def test_box_is_rescaled_reordered_and_clipped():
    ans = decode_lens_answer("<think>t</think><answer>[100, 56, -28, 200]</answer>", (224, 56), 112)
    assert ans.ok and ans.think == "t"
    assert ans.objects[0].model_box == (100, 56, -28, 200)
    assert ans.objects[0].raw_box == (200.0, 28.0, -56.0, 100.0)
    assert ans.box == (0.0, 28.0, 200.0, 56.0)
    assert ans.points == ()


def test_lens_settings_refuse_other_prompt_texts():
    from segzero_edge.lens.contract import LensSettings

    good = dict(
        num_queries=8,
        hidden_size=64,
        prompt_dim=256,
        connector_heads=16,
        connector_blocks=4,
        template="grounding",
        context_precisions=("fp32",),
        default_context="fp32",
    )
    assert LensSettings.from_mapping(LensSettings(**good).to_dict()).to_dict() == LensSettings(**good).to_dict()
    with pytest.raises(EngineIncompatibleError, match="prompt texts differ"):
        LensSettings(**good, templates={"grounding": GROUNDING, "cot": COT + " "})
    with pytest.raises(EngineIncompatibleError, match="default_context"):
        LensSettings(**{**good, "default_context": "int4"})
