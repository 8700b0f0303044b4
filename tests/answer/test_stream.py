"""AnswerStream: completion detection piece by piece (native and Python twin)."""

from __future__ import annotations

import random

import pytest

from segzero_edge.answer import AnswerStream, _stream_py
from segzero_edge.answer import decode as answer

from . import gen
from .conftest import needs_native

GOOD = '{"bbox": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}'
FULL = f"<think>the cup</think>\n<answer>{GOOD}</answer>"


def feed_chars(stream, text):
    """Feed one character at a time; return the index of the character that completed the answer."""
    for i, ch in enumerate(text):
        if stream.feed(ch):
            return i
    return None


def test_done_exactly_at_the_closing_tag_with_phases():
    s = AnswerStream()
    phases = []
    for ch in FULL:
        s.feed(ch)
        if not phases or phases[-1] != s.phase:
            phases.append(s.phase)
    assert phases == ["pre", "think", "after_think", "answer", "done"]
    assert s.done and s.reason == "answer_closed"
    s2 = AnswerStream()
    assert feed_chars(s2, FULL + "<|im_end|>") == len(FULL) - 1
    assert s2.answer((1680, 420)).box == (20.0, 50.0, 400.0, 105.0)


def test_tags_split_anywhere_across_pieces():
    for i in range(len(FULL) + 1):
        for j in range(i, len(FULL) + 1, 7):
            s = AnswerStream()
            results = [s.feed(FULL[:i]), s.feed(FULL[i:j]), s.feed(FULL[j:])]
            assert results[-1] and s.reason == "answer_closed"
            assert results.index(True) == (0 if i == len(FULL) else 1 if j == len(FULL) else 2)
            assert s.text == FULL


@pytest.mark.parametrize(
    ("text", "done_at"),
    [
        # an <answer> mentioned inside the think is cancelled by the later </think>
        ("<think>I write <answer> tags</think><answer>{}</answer>", None),
        # an unclosed think that contains a whole answer: complete (the decoder reads it too)
        ("<think>a<answer>{}</answer>", None),
        ("no tags at all {} </answer>", False),
        ("<think>a</think></answer><answer>x", False),
    ],
)
def test_completion_follows_the_decoder_regions(text, done_at):
    s = AnswerStream()
    idx = feed_chars(s, text)
    if done_at is False:
        assert idx is None and not s.done
    else:
        assert idx == len(text) - 1


def test_a_closed_json_value_is_not_the_end():
    """Only ``</answer>`` completes the answer, not the end of its first JSON value."""
    text = "<think>t</think><answer>" + '{"bbox": [1, 2, 3, 4], "s": "]\\"[", \'q\': \'{\', "p": [[1]]}' + "</answer>"
    s = AnswerStream()
    assert feed_chars(s, text[: text.index("</answer>")]) is None
    assert feed_chars(s, "</answer>") == len("</answer>") - 1 and s.reason == "answer_closed"
    assert s.answer().box == (1.0, 2.0, 3.0, 4.0)


def test_after_done_more_text_is_kept_but_ignored():
    s = AnswerStream()
    assert s.feed(FULL)
    assert s.feed("<think>again</think><answer>{}</answer>")
    assert s.reason == "answer_closed" and s.text.endswith("</answer>")
    s.reset()
    assert not s.done and s.text == "" and s.phase == "pre"


def test_decoding_at_the_stop_point_equals_decoding_everything():
    rng = random.Random(4)
    for _ in range(2000):
        text = gen.realistic(rng) + rng.choice(["", "<|im_end|>", "\n"])
        s = AnswerStream()
        for k in range(0, len(text), 3):
            if s.feed(text[k : k + 3]):
                break
        assert s.done == ("</answer>" in text)
        if s.done:
            a, b = answer.decode_answer(s.text), answer.decode_answer(text)
            assert (a.ok, a.box, a.points, a.error, a.think) == (b.ok, b.box, b.points, b.error, b.think), text


@needs_native
def test_native_stream_equals_python_twin():
    rng = random.Random(8)
    for _ in range(20_000):
        text = gen.any_text(rng)
        a, b = answer._native.AnswerStream(), _stream_py.AnswerStream()
        k = 0
        while k < len(text):
            step = rng.randrange(1, 6)
            piece = text[k : k + step]
            k += step
            assert a.feed(piece) == b.feed(piece), text
            assert (a.done, a.phase, a.reason) == (b.done, b.phase, b.reason), text


def test_piece_must_be_text():
    with pytest.raises(TypeError, match="piece must be a str"):
        AnswerStream().feed(b"<think>")
