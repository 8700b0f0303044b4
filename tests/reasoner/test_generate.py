"""The generation loop: sampling warpers, stopping rules, constraint masks, forced tokens and jump-forward."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import ConfigError
from segzero_edge.reasoner.generate import GenerationOptions, Sampler, TokenConstraint, generate_loop

V = 50


class TableModel:
    """A deterministic stand-in language model: logits depend on the last fed token and the position."""

    def __init__(self, seed=0):
        self.table = np.random.default_rng(seed).standard_normal((V, V)).astype(np.float32)
        self.fed: list[int] = []
        self.calls: list[int] = []

    def step(self, batch):
        self.fed += batch
        self.calls.append(len(batch))
        return self.table[batch[-1]] + 0.01 * len(self.fed)


class ScriptConstraint:
    """Allows only even ids for the first ``free`` tokens, then forces ``script``, then nothing."""

    done = False  # never complete: these tests stop on max_new_tokens

    def __init__(self, free, script):
        self.free, self.script, self.seen = free, list(script), []

    def mask(self, out=None):
        mask = np.zeros(V, bool) if out is None else out
        mask[:] = False
        mask[::2] = True
        return mask

    def forced_ids(self):
        n = len(self.seen) - self.free
        return self.script[n:] if n >= 0 else []

    def advance(self, token):
        self.seen.append(token)


def test_protocol_is_runtime_checkable():
    assert isinstance(ScriptConstraint(1, [2]), TokenConstraint)


def test_greedy_is_argmax_and_respects_max_new_tokens():
    m = TableModel()
    first = m.table[3]
    trace = generate_loop(first, m.step, GenerationOptions(max_new_tokens=7, stop_at_answer=False))
    assert len(trace.token_ids) == 7 and trace.stop_reason == "max_new_tokens"
    assert trace.token_ids[0] == int(np.argmax(first))
    assert trace.decoder_calls == 6  # the last token needs no call
    assert list(m.fed) == list(trace.token_ids[:-1])


def test_eos_stops_and_is_kept():
    m = TableModel()
    greedy = generate_loop(m.table[3], TableModel().step, GenerationOptions(max_new_tokens=10, stop_at_answer=False))
    eos = greedy.token_ids[4]
    trace = generate_loop(m.table[3], m.step, GenerationOptions(max_new_tokens=10, stop_at_answer=False), eos_ids=[eos])
    assert trace.stop_reason == "eos" and trace.token_ids[-1] == eos
    assert trace.token_ids == greedy.token_ids[: greedy.token_ids.index(eos) + 1]


class ScriptModel:
    """Logits whose argmax is ``script[number of tokens fed]``: greedy decoding replays the script."""

    def __init__(self, script):
        self.script, self.fed = list(script), 0

    def logits(self):
        out = np.zeros(V, np.float32)
        out[self.script[min(self.fed, len(self.script) - 1)]] = 1.0
        return out

    def step(self, batch):
        self.fed += len(batch)
        return self.logits()


WORDS = {
    1: "I think",
    2: "<think>",
    3: "</think>",
    4: "<answer>",
    5: '{"bbox": [1, 2, 3, 4]}',
    6: "</ans",
    7: "wer> tail",
    8: "</answer>",
    9: " more",
}


def test_stop_when_the_streaming_decoder_sees_the_answer_closed():
    m = ScriptModel([2, 1, 3, 4, 5, 6, 7, 9, 9, 9])
    pieces = []
    trace = generate_loop(
        m.logits(), m.step, GenerationOptions(max_new_tokens=10), text_step=WORDS.__getitem__, on_text=pieces.append
    )
    assert trace.stop_reason == "answer" and trace.token_ids == (2, 1, 3, 4, 5, 6, 7)  # "</answer>" split in two
    assert "".join(pieces) == trace.text and trace.text.endswith("wer> tail")


def test_answer_end_inside_the_think_does_not_stop():
    m = ScriptModel([2, 8, 1, 9, 9, 9])
    trace = generate_loop(m.logits(), m.step, GenerationOptions(max_new_tokens=6), text_step=WORDS.__getitem__)
    assert trace.stop_reason == "max_new_tokens" and 8 in trace.token_ids


def test_constraint_mask_and_jump_forward_counts():
    m = TableModel(1)
    c = ScriptConstraint(free=3, script=[11, 13, 15, 17])
    trace = generate_loop(m.table[0], m.step, GenerationOptions(max_new_tokens=9, stop_at_answer=False), constraint=c)
    assert all(t % 2 == 0 for t in trace.token_ids[:3])  # the mask
    assert list(trace.token_ids[3:7]) == [11, 13, 15, 17]  # forced, in order
    assert trace.forced_tokens == 4
    # the 3rd sampled token and the 4 forced ones go into ONE call: 4 sequential steps saved
    assert trace.steps_saved == 4 and 5 in trace.step_sizes
    assert c.seen == list(trace.token_ids)


def test_jump_forward_off_gives_the_same_tokens_one_call_each():
    on = generate_loop(
        TableModel(1).table[0],
        TableModel(1).step,
        GenerationOptions(max_new_tokens=9, stop_at_answer=False),
        constraint=ScriptConstraint(3, [11, 13, 15, 17]),
    )
    m = TableModel(1)
    off = generate_loop(
        m.table[0],
        m.step,
        GenerationOptions(max_new_tokens=9, stop_at_answer=False, jump_forward=False),
        constraint=ScriptConstraint(3, [11, 13, 15, 17]),
    )
    assert off.steps_saved == 0 and set(m.calls) == {1}
    assert off.forced_tokens == on.forced_tokens == 4
    # the logits differ only by the fed-length term, which is the same in both runs at each position
    assert off.token_ids == on.token_ids


def test_forced_tokens_right_after_prefill():
    m = TableModel()
    trace = generate_loop(
        m.table[0],
        m.step,
        GenerationOptions(max_new_tokens=5, stop_at_answer=False),
        constraint=ScriptConstraint(0, [7, 8, 9]),
    )
    assert trace.token_ids[:3] == (7, 8, 9) and m.calls[0] == 3


def test_seeded_sampling_is_reproducible_and_covers_the_distribution():
    logits = np.log(np.array([0.5, 0.3, 0.2, 1e-9], np.float32))
    a = Sampler(GenerationOptions(do_sample=True, seed=3))
    b = Sampler(GenerationOptions(do_sample=True, seed=3))
    draws = [a(logits) for _ in range(3000)]
    assert draws[:50] == [b(logits) for _ in range(50)]
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(freq[:3], [0.5, 0.3, 0.2], atol=0.04) and freq[3] == 0


@pytest.mark.parametrize(
    ("top_k", "top_p", "temperature"), [(0, 0.7, 1.0), (3, 1.0, 1.0), (5, 0.5, 0.7), (0, 0.05, 2.0)]
)
def test_warpers_keep_the_same_tokens_as_transformers(top_k, top_p, temperature):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = np.random.default_rng(top_k).standard_normal(40).astype(np.float32) * 3
    s = torch.from_numpy(logits)[None]
    s = TemperatureLogitsWarper(temperature)(None, s)
    if top_k:
        s = TopKLogitsWarper(top_k)(None, s)
    if top_p < 1:
        s = TopPLogitsWarper(top_p)(None, s)
    ref_support = set(np.flatnonzero(np.isfinite(s[0].numpy())))
    sampler = Sampler(GenerationOptions(do_sample=True, seed=0, top_k=top_k, top_p=top_p, temperature=temperature))
    got = {sampler(logits) for _ in range(4000)}
    assert got <= ref_support and len(got) == len(ref_support)


def test_mask_applies_to_sampling_too():
    sampler = Sampler(GenerationOptions(do_sample=True, seed=0))
    allowed = np.zeros(40, bool)
    allowed[[3, 9]] = True
    assert {sampler(np.zeros(40, np.float32), allowed) for _ in range(200)} == {3, 9}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_new_tokens": 0},
        {"temperature": 0},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"seed": -2},
        {"constrained": False, "thinking_budget": 5},
        {"constrained": True, "thinking_budget": -1},
        {"constrained": "no"},
        {"do_sample": 1},
        {"max_new_tokens": 2.5},
    ],
)
def test_invalid_options_are_refused(kwargs):
    with pytest.raises(ConfigError):
        GenerationOptions(**kwargs)


class DoneAfterScript(ScriptConstraint):
    """Complete once the forced script has been written (like an answer closed by ``</answer>``)."""

    @property
    def done(self):
        return len(self.seen) >= self.free + len(self.script)


def test_a_complete_constraint_stops_generation_without_reading_text():
    m = TableModel(1)
    c = DoneAfterScript(free=2, script=[11, 13])
    trace = generate_loop(m.table[0], m.step, GenerationOptions(max_new_tokens=30), constraint=c)
    assert trace.stop_reason == "answer" and list(trace.token_ids[2:]) == [11, 13] and len(trace.token_ids) == 4
    m = TableModel(1)
    free = generate_loop(
        m.table[0],
        m.step,
        GenerationOptions(max_new_tokens=30, stop_at_answer=False),
        constraint=DoneAfterScript(free=2, script=[11, 13]),
    )
    assert free.stop_reason == "max_new_tokens" and len(free.token_ids) == 30
