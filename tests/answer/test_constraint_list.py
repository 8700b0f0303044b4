"""The VisionReasoner answer constraint: a list of 1 to max_objects objects, checked token by token
against the independent brute-force reference, with any tokenization; every finished answer decodes."""

from __future__ import annotations

import random
import re

import pytest

from segzero_edge.errors import InputError

from .conftest import needs_native
from .test_constraint import _tokenizations, _walk, _walk_banned

pytestmark = needs_native

ONE = '{"bbox_2d": [10, 100, 200, 210], "point_2d": [30, 110]}'
_CHARS = sorted(set('</think><answer>[{"bbox_2d": [0123456789, ], "point_2d": [, ]}, {]</answer>\n'))
VR_VOCAB = [
    *[c.encode() for c in _CHARS if not c.isdigit() and c not in "<>/\n "],
    *[str(d).encode() for d in range(10)],
    *[s.encode() for s in ("84", "840", "100", "0]", "0, 1", "45,", " ", "\n", "<", "/", ">")],
    *[s.encode() for s in ("</think>", "<answer>", "</think><answer>", "<answer>[", '[{"', '{"', "bbox_2d", "bbox")],
    *[s.encode() for s in ("_2d", '": [', "point_2d", "point", "]}", "}, ", "},", ", {", "}]", "]}]", "]}, {")],
    *[s.encode() for s in ("]</answer>", "</answer>", "}]</answer>", ONE, "[" + ONE + "]</answer>", "x")],
    b"<|im_end|>",
]
EOS = len(VR_VOCAB) - 1


def _constraint(max_objects: int, vocab=VR_VOCAB, **kwargs):
    from segzero_edge.answer.constraint import AnswerConstraint

    return AnswerConstraint(vocab, grammar="vision_reasoner", max_objects=max_objects, **kwargs)


@pytest.mark.parametrize("max_objects", [1, 2, 3])
def test_masks_equal_reference(max_objects):
    from segzero_edge import decode_answer

    constraint = _constraint(max_objects, eos_token_ids=[EOS])
    rng = random.Random(max_objects)
    counts = set()
    for _ in range(25):
        budget = rng.choice([0, 1, 3, 10])
        generated, ref = _walk(
            constraint,
            VR_VOCAB,
            rng,
            budget,
            eos=(EOS,),
            max_steps=2000,
            grammar="vision_reasoner",
            max_objects=max_objects,
        )
        assert ref.done
        text = b"".join(VR_VOCAB[t] for t in generated).decode()
        answer = decode_answer(text)
        assert answer.ok, (text, answer.error)
        assert 1 <= len(answer.objects) <= max_objects
        assert all(len(o.points) == 1 for o in answer.objects)
        counts.add(len(answer.objects))
    assert counts == set(range(1, max_objects + 1))  # the walks reached every list length


def test_masks_equal_reference_qwen_vocab(qwen_tokenizer):
    from segzero_edge.answer.constraint import AnswerConstraint, token_bytes_from_tokenizer

    constraint = AnswerConstraint.from_tokenizer(qwen_tokenizer, grammar="vision_reasoner", max_objects=2)
    tokens, specials, _ = token_bytes_from_tokenizer(qwen_tokenizer)
    vocab = [t if t is not None else b"\xff" for t in tokens]
    eos = tuple(constraint.eos_token_ids)
    banned = {i for name, i in specials.items() if i not in eos}
    rng = random.Random(3)
    for budget in (0, 2, 8):
        assert _walk_banned(
            constraint, vocab, rng, budget, eos, banned, grammar="vision_reasoner", max_objects=2, max_steps=600
        )


@pytest.mark.parametrize(
    "answer",
    [
        "[" + ONE + "]</answer>",
        "[" + ONE + ", " + ONE + "]</answer>",
        "[" + ONE + "," + re.sub(r"(\d), (\d)", r"\1,\2", ONE) + "," + ONE + "]</answer>",
    ],
)
def test_every_tokenization_is_accepted(answer):
    from segzero_edge import decode_answer

    constraint = _constraint(3)
    text = "<think>a</think><answer>" + answer
    for ids in _tokenizations(text.encode(), VR_VOCAB, random.Random(4), 100):
        state = constraint.new_state()
        for t in ids:
            state.advance(t)
        assert state.done
        assert len(decode_answer(b"".join(VR_VOCAB[t] for t in ids).decode()).objects) == answer.count("bbox_2d")


def test_the_list_ends_at_max_objects_and_never_empty():
    constraint = _constraint(2)
    state = constraint.new_state(0)
    assert state.forced_text() == '</think><answer>[{"bbox_2d": ['
    closing = VR_VOCAB.index(b"]")
    for t in state.forced_ids():
        state.advance(t)
    # an empty list is not an answer under the constraint: the first object must be written
    assert not state.allowed(closing)
    text = '1, 2, 3, 4], "point_2d": [5, 6]}'
    for ch in text.encode():
        state.advance(VR_VOCAB.index(bytes([ch])))
    assert state.forced_text() == ""  # a choice: ']' ends the list, ',' starts object 2
    assert state.allowed(VR_VOCAB.index(b",")) and state.allowed(closing)
    state.advance(VR_VOCAB.index(b","))
    for ch in (' {"bbox_2d": [' + text).encode():
        state.advance(VR_VOCAB.index(bytes([ch])))
    assert state.forced_text() == "]</answer>"  # object 2 of 2: the list must end
    assert not state.allowed(VR_VOCAB.index(b","))


def test_object_count_adds_states_and_bad_arguments():
    from segzero_edge.answer.constraint import AnswerConstraint

    byte_vocab = [bytes([b]) for b in range(256)]
    one, four = (AnswerConstraint(byte_vocab, grammar="vision_reasoner", max_objects=n) for n in (1, 4))
    assert four._index.num_states > 3 * one._index.num_states
    # the seg_zero grammar ignores max_objects
    assert AnswerConstraint(byte_vocab, max_objects=9).max_objects == 1
    for bad in (0, 129, True, 2.0):
        with pytest.raises(InputError, match="max_objects"):
            AnswerConstraint(byte_vocab, grammar="vision_reasoner", max_objects=bad)
    with pytest.raises(InputError, match="unknown answer grammar"):
        AnswerConstraint(byte_vocab, grammar="lens")


def test_allow_empty_adds_the_empty_list_and_nothing_else():
    from segzero_edge import decode_answer

    constraint = _constraint(2, eos_token_ids=[EOS], allow_empty=True)
    rng = random.Random(11)
    counts = set()
    for _ in range(30):
        generated, _ref = _walk(
            constraint,
            VR_VOCAB,
            rng,
            rng.choice([0, 2]),
            eos=(EOS,),
            max_steps=2000,
            grammar="vision_reasoner",
            max_objects=2,
            allow_empty=True,
        )
        answer = decode_answer(b"".join(VR_VOCAB[t] for t in generated).decode())
        counts.add(len(answer.objects))
        assert answer.ok or answer.error == "the answer is an empty list"
    assert counts == {0, 1, 2}
    state = constraint.new_state(0)
    assert state.forced_text() == "</think><answer>["
    with pytest.raises(InputError, match="allow_empty"):
        _constraint(2, allow_empty=1)
