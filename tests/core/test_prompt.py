"""The prompt contract: each family's user text byte for byte, and the chat rendering."""

import json

import pytest

from segzero_edge import prompt
from segzero_edge.errors import CheckpointError, InputError

# Typed out independently of the implementation, from Seg-Zero's rl_dataset.py / infer.py literal.
SPEC_TEXT = (
    "Please find '{Question}' with bbox and points.Compare the difference between objects and find the most "
    "closely matched one.Output the thinking process in <think> </think> and final answer in <answer> </answer> "
    "tags.Output the one bbox and points of two largest inscribed circles inside the interested object in JSON "
    "format.i.e., <think> thinking process here </think><answer>{'bbox': [10,100,200,210], 'points_1': [30,110], "
    "'points_2': [35,180]}</answer>"
)

# Typed out independently from the VisionReasoner literal (Seg-Zero HEAD rl_dataset.py / infer_multi_object.py,
# VisionReasoner vision_reasoner_model.py): double quotes around the question, valid JSON example.
VR_SPEC_TEXT = (
    'Please find "{Question}" with bboxs and points.Compare the difference between object(s) and find the most '
    "closely matched object(s).Output the thinking process in <think> </think> and final answer in <answer> "
    "</answer> tags.Output the bbox(es) and point(s) inside the interested object(s) in JSON format.i.e., "
    '<think> thinking process here </think><answer>[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
    '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]</answer>'
)


def test_user_text_matches_spec_byte_for_byte():
    got = prompt.seg_zero_user_text("The unusal object in the image.")
    assert got == SPEC_TEXT.replace("{Question}", "the unusal object in the image")


def test_user_text_has_no_space_after_periods_and_single_quotes():
    text = prompt.seg_zero_user_text("x")
    assert "points.Compare" in text and "one.Output" in text and "format.i.e.," in text
    assert "{'bbox': [10,100,200,210]" in text


@pytest.mark.parametrize(
    ("question", "normalized"),
    [
        ("The Cup.", "the cup"),
        ("...Left cup...", "left cup"),
        ("  the cup. ", "  the cup. "),  # strip(".") keeps whitespace; the period is not at the end
        ("the robot's cup", "the robot's cup"),  # quotes are inserted unchanged
        ("A.B", "a.b"),
    ],
)
def test_question_normalization_is_lower_and_strip_periods(question, normalized):
    assert prompt.normalize_question(question) == normalized
    assert f"Please find '{normalized}' with" in prompt.seg_zero_user_text(question)


def test_training_variant_has_image_token_prefix():
    assert prompt.seg_zero_user_text("a", with_image_token=True) == "<image>" + prompt.seg_zero_user_text("a")


def test_non_string_question_is_refused():
    with pytest.raises(InputError, match="must be a str"):
        prompt.seg_zero_user_text(None)  # type: ignore[arg-type]


def test_render_chat_equals_transformers_apply_chat_template():
    jinja_tokenizer = pytest.importorskip("transformers")
    from transformers.utils.chat_template_utils import render_jinja_template

    from segzero_edge.reference.qwen import QWEN25VL_CHAT_TEMPLATE

    del jinja_tokenizer
    for question in ["The unusal object in the image.", "the cup the robot should pick up", "it's 'quoted'"]:
        rendered, _ = render_jinja_template(
            conversations=[prompt.seg_zero_messages(question)],
            chat_template=QWEN25VL_CHAT_TEMPLATE,
            add_generation_prompt=True,
        )
        assert rendered[0] == prompt.render_chat(question)


def test_render_chat_structure():
    text = prompt.render_chat("the cup")
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>Please find 'the cup'" in text
    assert text.endswith("</answer><|im_end|>\n<|im_start|>assistant\n")


def test_image_token_count_and_expansion():
    assert prompt.num_image_tokens(840) == 900
    assert prompt.num_image_tokens(112) == 16
    expanded = prompt.expand_image_pads(prompt.render_chat("x"), 900)
    assert expanded.count(prompt.IMAGE_PAD) == 900
    with pytest.raises(InputError):
        prompt.expand_image_pads(expanded, 3)


@pytest.mark.parametrize("bad", [0, 27, 850, -28, 84.0, True])
def test_invalid_input_sizes_are_refused(bad):
    with pytest.raises(InputError):
        prompt.validate_input_size(bad)


def test_vision_reasoner_user_text_matches_spec_byte_for_byte():
    got = prompt.vision_reasoner_user_text("All the Cups.")
    assert got == VR_SPEC_TEXT.replace("{Question}", "all the cups")
    # VisionReasoner strips '."?!' at both ends (Seg-Zero only '.'), inner quotes stay
    for question, normalized in (('"Where are the cups?!"', "where are the cups"), ('a "b" c!', 'a "b" c')):
        assert prompt.vision_reasoner_user_text(question) == VR_SPEC_TEXT.replace("{Question}", normalized)
    assert prompt.user_text("All the Cups.", "vision_reasoner") == got
    assert prompt.user_text("All the Cups.", "seg_zero") == prompt.seg_zero_user_text("All the Cups.")
    # the training variant carries "<image>\n" (with the newline), unlike Seg-Zero's
    assert prompt.vision_reasoner_user_text("a", with_image_token=True) == "<image>\n" + VR_SPEC_TEXT.replace(
        "{Question}", "a"
    )
    json_example = got.split("<answer>")[-1].removesuffix("</answer>")
    assert len(json.loads(json_example)) == 2  # valid JSON, unlike Seg-Zero's example
    with pytest.raises(InputError, match="unknown model family"):
        prompt.user_text("a", "coprs")


def test_vision_reasoner_chat_equals_transformers_apply_chat_template():
    pytest.importorskip("transformers")
    from transformers.utils.chat_template_utils import render_jinja_template

    from segzero_edge.reference.qwen import QWEN25VL_CHAT_TEMPLATE

    for question in ["every red shape", 'the "quoted" cup']:
        rendered, _ = render_jinja_template(
            conversations=[prompt.chat_messages(question, "vision_reasoner")],
            chat_template=QWEN25VL_CHAT_TEMPLATE,
            add_generation_prompt=True,
        )
        assert rendered[0] == prompt.render_chat(question, family="vision_reasoner")
        assert '<|vision_end|>Please find "' in rendered[0]


def test_checkpoint_meta_roundtrip_and_default(tmp_path):
    assert prompt.read_checkpoint_meta(tmp_path) == {
        "prompt_version": prompt.PROMPT_VERSION,
        "input_size": 840,
        "family": "seg_zero",
    }
    prompt.write_checkpoint_meta(tmp_path, input_size=224)
    assert prompt.read_checkpoint_meta(tmp_path)["input_size"] == 224
    prompt.write_checkpoint_meta(tmp_path, input_size=224, family="vision_reasoner")
    assert prompt.read_checkpoint_meta(tmp_path)["family"] == "vision_reasoner"
    with pytest.raises(InputError, match="unknown model family"):
        prompt.write_checkpoint_meta(tmp_path, family="coprs")
    (tmp_path / prompt.CHECKPOINT_META_FILE).write_text(json.dumps({"input_size": 224, "family": "x"}))
    with pytest.raises(CheckpointError, match="unknown model family"):
        prompt.read_checkpoint_meta(tmp_path)
    (tmp_path / prompt.CHECKPOINT_META_FILE).write_text(json.dumps({"input_size": 100}))
    with pytest.raises(CheckpointError, match=r"segzero_edge\.json"):
        prompt.read_checkpoint_meta(tmp_path)
