"""AnswerConstraint: masks checked token by token against an independent brute-force reference,
any tokenization accepted, ranges, thinking budget, forced continuations, partial UTF-8, errors."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from segzero_edge.errors import InputError

from .conftest import needs_native
from .constraint_reference import Reference

pytestmark = needs_native

ANSWER = '{"bbox": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}</answer>'
# A vocabulary with the awkward tokens real tokenizers have: tags split or merged with what follows,
# keys split, quotes merged with spaces, multi-digit numbers, a whole answer in one token, bytes of a
# multi-byte character, an empty token. It also holds every single character of the skeleton, like a
# byte-level vocabulary, so every valid prefix can be completed (dead ends are tested separately).
WHOLE = b'{"bbox": [0, 0, 840, 840], "points_1": [0, 0], "points_2": [840, 840]}</answer>'
_SKELETON_CHARS = sorted(set('</think><answer>{"bbox": [0123456789, ], "points_1": [, ], "points_2": [\n]}</answer>'))
HAND_VOCAB = [
    *[c.encode() for c in _SKELETON_CHARS if not c.isdigit() and c not in "<>/\n "],
    *[str(d).encode() for d in range(10)],
    *[s.encode() for s in ("84", "840", "841", "100", "07", "8,", "0]", "0, 1", "45,", "9999")],
    *[s.encode() for s in ("<", "/", ">", "think", "answer", "</", "<ans", "wer>", "</think>", "<answer>")],
    *[s.encode() for s in ("</think><answer>", "</think>\n", '</think>\n<answer>{"', "</think>   ", "<answer>x")],
    *[s.encode() for s in ('<answer>{"bbox": [', '{"', "{", '"', "bbox", "bb", "ox", '":', '": [', " [", "[")],
    *[s.encode() for s in (",", ", ", " ", "]", "],", '], "', "points", "_", "points_1", '_2": [', "]}", "]}</")],
    *[s.encode() for s in ("]}</answer>", "</answer>", "\n", "x", "hello {", "think>", " <answer>")],
    WHOLE,
    "日".encode()[:2],
    "日".encode()[2:],
    b"",
    b"<|im_end|>",
]
EOS = len(HAND_VOCAB) - 1


@pytest.fixture(scope="module")
def hand_constraint():
    from segzero_edge.answer.constraint import AnswerConstraint

    return AnswerConstraint(HAND_VOCAB, model_size=840, eos_token_ids=[EOS])


def _walk(
    constraint,
    vocab: list[bytes],
    rng: random.Random,
    budget,
    *,
    mw=840,
    mh=840,
    eos=(),
    max_steps=400,
    grammar="seg_zero",
    max_objects=1,
    allow_empty=False,
):
    """A random generation; at every step the mask must equal the reference's brute-force answer."""
    texts = [t.decode("latin-1") for t in vocab]
    ref = Reference(mw, mh, budget, grammar, max_objects, allow_empty)
    state = constraint.new_state(budget)
    generated = []
    for _ in range(max_steps):
        mask = state.mask()
        expected = np.array([ref.allowed(t) and i not in eos for i, t in enumerate(texts)])
        if ref.done:
            expected = np.array([i in eos for i in range(len(texts))])
        assert state.done == ref.done
        diff = np.nonzero(mask[: len(texts)] != expected)[0]
        assert diff.size == 0, [(vocab[i], bool(mask[i])) for i in diff[:10]] + [ref.think, ref.answer]
        assert state.allowed_count == int(mask.sum())
        if state.done:
            return generated, ref
        if state.phase == "answer":
            forced = state.forced_text()
            chars = ref.next_chars()
            assert bool(forced) == (len(chars) == 1), (ref.answer, forced, chars)
            if forced:
                assert forced[0] in chars
                ids = state.forced_ids()
                joined = b"".join(vocab[i] for i in ids).decode("latin-1")
                assert forced.startswith(joined)
                # greedy longest match: nothing in the vocabulary covers more of the forced text
                longest = max((len(t) for t in texts if t and forced.startswith(t)), default=0)
                assert len(texts[ids[0]]) == longest if ids else longest == 0
        allowed = np.nonzero(mask)[0]
        # prefer progress in the answer phase: tokens that are forced or long
        token = int(rng.choice(list(allowed)))
        state.advance(token)
        ref.advance(texts[token])
        generated.append(token)
    raise AssertionError("generation did not finish")


def test_masks_equal_reference_hand_vocab(hand_constraint):
    rng = random.Random(0)
    for _ in range(60):
        budget = rng.choice([None, 0, 1, 3, 10])
        _, ref = _walk(hand_constraint, HAND_VOCAB, rng, budget, eos=(EOS,))
        assert ref.done


def test_masks_equal_reference_qwen_vocab(qwen_constraint, qwen_tokenizer):
    from segzero_edge.answer.constraint import token_bytes_from_tokenizer

    tokens, specials, _ = token_bytes_from_tokenizer(qwen_tokenizer)
    vocab = [t if t is not None else b"\xff" for t in tokens]
    eos = tuple(qwen_constraint.eos_token_ids)
    banned = {i for name, i in specials.items() if i not in eos}
    rng = random.Random(1)
    for _ in range(8):
        texts_ok = _walk_banned(qwen_constraint, vocab, rng, rng.choice([0, 2, 8]), eos, banned)
        assert texts_ok


def _walk_banned(constraint, vocab, rng, budget, eos, banned, *, grammar="seg_zero", max_objects=1, max_steps=400):
    # like _walk, with special tokens banned in every phase
    texts = [t.decode("latin-1") for t in vocab]
    ref = Reference(840, 840, budget, grammar, max_objects)
    state = constraint.new_state(budget)
    for _ in range(max_steps):
        mask = state.mask()
        if ref.done:
            expected = np.array([i in eos for i in range(len(texts))])
        else:
            expected = np.array([ref.allowed(t) and i not in eos and i not in banned for i, t in enumerate(texts)])
        assert np.array_equal(mask, expected), (ref.think, ref.answer)
        if state.done:
            return True
        token = int(rng.choice(list(np.nonzero(mask)[0])))
        state.advance(token)
        ref.advance(texts[token])
    return False


def _tokenizations(text: bytes, vocab: list[bytes], rng: random.Random, n: int):
    """``n`` random segmentations of ``text`` into vocabulary entries (always completable)."""
    reach = [False] * (len(text) + 1)
    reach[len(text)] = True
    for i in range(len(text) - 1, -1, -1):
        reach[i] = any(t and text.startswith(t, i) and reach[i + len(t)] for t in vocab)
    assert reach[0]
    for _ in range(n):
        i, ids = 0, []
        while i < len(text):
            options = [k for k, t in enumerate(vocab) if t and text.startswith(t, i) and reach[i + len(t)]]
            k = rng.choice(options)
            ids.append(k)
            i += len(vocab[k])
        yield ids


@pytest.mark.parametrize(
    "text",
    [
        "<think>x hello {x</think><answer>" + ANSWER,
        "<think>x</think>\n<answer>" + re.sub(r"(\d), (\d)", r"\1,\2", ANSWER),
        "</think>  <answer>" + ANSWER.replace("[10, 100, 200, 210]", "[0,0, 840,840]"),
        "x x <answer>" + ANSWER,
    ],
)
def test_every_tokenization_is_accepted(hand_constraint, text):
    from segzero_edge import decode_answer

    rng = random.Random(2)
    for ids in _tokenizations(text.encode(), HAND_VOCAB, rng, 200):
        state = hand_constraint.new_state()
        for t in ids:
            state.advance(t)
        assert state.done
        assert decode_answer(b"".join(HAND_VOCAB[t] for t in ids).decode()).ok


def test_number_ranges_per_axis_and_leading_zeros():
    from segzero_edge.answer.constraint import AnswerConstraint

    pieces = [
        b"<answer>",
        b'{"bbox": [',
        b", ",
        b'], "points_1": [',
        b'], "points_2": [',
        b"]}</answer>",
        b"</think>",
    ]
    vocab = [*[str(d).encode() for d in range(10)], *pieces]
    c = AnswerConstraint(vocab, model_size=(448, 672))
    digits = {str(d): d for d in range(10)}

    def state_after(*tokens):
        s = c.new_state()
        for t in tokens:
            s.advance(vocab.index(t.encode()))
        return s

    s = state_after("<answer>", '{"bbox": [', "4", "4")
    assert s.allowed(digits["8"]) and not s.allowed(digits["9"])  # x <= 448
    s = state_after("<answer>", '{"bbox": [', "4", "4", "8", ", ", "6", "7")
    assert s.allowed(digits["2"]) and not s.allowed(digits["3"])  # y <= 672
    s = state_after("<answer>", '{"bbox": [', "0")
    assert not any(s.allowed(digits[d]) for d in digits)  # no leading zero
    s = state_after("<answer>", '{"bbox": [', "4", "4", "8")
    assert s.forced_text() == ","  # 448 is the largest x: the number must end
    s = state_after("<answer>", '{"bbox": [', "4", "4")
    assert s.forced_text() == ""  # 44 may go on (440..448) or end
    assert s.allowed_ids().tolist() == [*range(9), vocab.index(b", ")]


def test_tokens_leading_to_dead_ends_are_not_allowed():
    from segzero_edge.answer.constraint import AnswerConstraint

    # No token can spell what must follow '], "po' (only whole key pieces exist): that token is a valid
    # prefix of the answer, but taking it would leave the generation stuck, so it is never allowed.
    pieces = ['</think><answer>{"bbox": [', ", ", '], "points_1": [', '], "points_2": [', "]}</answer>"]
    vocab = [*[str(d).encode() for d in range(10)], *[p.encode() for p in pieces], b'], "po', b"x"]
    c = AnswerConstraint(vocab, thinking_budget=0)
    s = c.new_state()
    trap = vocab.index(b'], "po')
    for t in [vocab.index(pieces[0].encode()), 1, 11, 2, 11, 3, 11, 4]:
        assert not s.allowed(trap)
        s.advance(t)
    assert not s.allowed(trap) and s.allowed(vocab.index(pieces[2].encode()))
    with pytest.raises(InputError, match="cannot spell the answer"):
        AnswerConstraint([b"<", b"/", b"think", b">"])


def test_thinking_budget_forces_the_answer(qwen_constraint, qwen_tokenizer):
    state = qwen_constraint.new_state(thinking_budget=3)
    word = qwen_tokenizer.token_to_id("the") or 0
    for _ in range(3):
        assert state.phase == "think"
        state.advance(word)
    assert state.phase == "answer" and state.think_tokens == 3
    assert state.forced_text() == '</think><answer>{"bbox": ['
    pieces = [qwen_tokenizer.decode([t]) for t in state.forced_ids()]
    assert "".join(pieces) == '</think><answer>{"bbox": ['
    zero = qwen_constraint.new_state(thinking_budget=0)
    assert zero.phase == "answer" and zero.forced_text().startswith("</think><answer>")
    assert qwen_constraint.new_state(thinking_budget=None).phase == "think"


def test_end_of_sequence_only_once_done(hand_constraint):
    s = hand_constraint.new_state()
    assert not s.allowed(EOS)
    s.advance(HAND_VOCAB.index(b"<answer>"))
    s.advance(HAND_VOCAB.index(b'{"'))
    assert not s.allowed(EOS)
    done = hand_constraint.new_state()
    done.advance(HAND_VOCAB.index(b"<answer>"))
    done.advance(HAND_VOCAB.index(WHOLE))  # the whole answer in one token
    assert done.done and done.allowed(EOS) and done.allowed_ids().tolist() == [EOS]
    with pytest.raises(InputError, match="not allowed"):
        done.advance(0)


def test_think_tokens_that_close_the_think_badly_are_banned(hand_constraint):
    s = hand_constraint.new_state()
    index = HAND_VOCAB.index
    assert s.allowed(index(b"</think>\n")) and s.allowed(index(b'</think>\n<answer>{"'))
    assert not s.allowed(index(b"</think>   "))  # three spaces: at most two before <answer>
    assert not s.allowed(index(b"<answer>x"))
    assert s.allowed(index(b"hello {")) and s.allowed(index(b"")) and s.allowed(index(b"x"))
    s.advance(index(b"</"))
    assert s.allowed(index(b"think")) and s.allowed(index(b"x"))
    s.advance(index(b"think"))
    assert s.allowed(index(b">")) and not s.allowed(index(b"</think>   "))


def test_partial_utf8_tokens_get_their_exact_bytes(qwen_tokenizer):
    from segzero_edge.answer.constraint import token_bytes_from_tokenizer

    tokens, _, _ = token_bytes_from_tokenizer(qwen_tokenizer)
    partial = [i for i, t in enumerate(tokens) if t is not None and _is_partial_utf8(t)]
    assert partial, "the test tokenizer should have byte-level tokens that are partial UTF-8"
    for i in partial:
        assert "\ufffd" in qwen_tokenizer.decode([i], skip_special_tokens=False)
    # whole text round-trips through the per-token bytes
    ids = qwen_tokenizer.encode("<think>café 日本 🙂</think>").ids
    assert b"".join(tokens[i] for i in ids).decode() == "<think>café 日本 🙂</think>"


def _is_partial_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_apply_mask_and_copy(hand_constraint):
    s = hand_constraint.new_state()
    s.advance(HAND_VOCAB.index(b"<answer>"))
    mask = s.mask()
    for dtype in (np.float32, np.float64, np.float16):
        logits = np.random.default_rng(0).normal(size=len(HAND_VOCAB)).astype(dtype)
        before = logits.copy()
        s.apply(logits)
        assert np.all(np.isneginf(logits[~mask])) and np.array_equal(logits[mask], before[mask])
    two_d = np.zeros((1, len(HAND_VOCAB)), np.float32)
    assert np.isneginf(s.apply(two_d)[0][~mask]).all()
    c = s.copy()
    c.advance(HAND_VOCAB.index(b'{"'))
    assert s.mask().tolist() == mask.tolist() and c.mask().tolist() != mask.tolist()
    assert sorted(s.allowed_ids().tolist()) == np.nonzero(mask)[0].tolist()


def test_argument_errors():
    from segzero_edge.answer.constraint import AnswerConstraint

    byte_vocab = [bytes([b]) for b in range(256)]
    with pytest.raises(InputError, match="vocab\\[1\\]"):
        AnswerConstraint([b"a", 3])
    with pytest.raises(InputError, match="vocab_size"):
        AnswerConstraint(byte_vocab, vocab_size=10)
    with pytest.raises(InputError, match="outside the vocabulary"):
        AnswerConstraint(byte_vocab, eos_token_ids=[300])
    with pytest.raises(InputError, match="model size"):
        AnswerConstraint(byte_vocab, model_size=0)
    with pytest.raises(InputError, match="thinking_budget"):
        AnswerConstraint(byte_vocab, thinking_budget=-1)
    c = AnswerConstraint(byte_vocab, vocab_size=260)
    s = c.new_state()
    with pytest.raises(InputError, match="shape"):
        s.apply(np.zeros(3, np.float32))
    with pytest.raises(InputError, match="numpy array"):
        s.apply([0.0] * 260)
    with pytest.raises(InputError, match="not allowed"):
        s.advance(258)  # a padding id past the vocabulary
    with pytest.raises(InputError, match="not allowed"):
        s.advance(-1)
