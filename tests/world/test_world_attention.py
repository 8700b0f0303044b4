"""Answer-attention supervision of the world reasoner's SFT (world/attention.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from segzero_edge.world.attention import (  # noqa: E402
    FIRST_LAYER,
    HEAD,
    answer_token_indices,
    attention_loss,
    coverage_target,
    mention_token_groups,
)


def test_coverage_target_is_the_masks_share_of_each_token():
    mask = np.zeros((56, 56), np.uint8)
    mask[0:28, 28:56] = 255  # fills the top-right token
    mask[28:42, 0:28] = 255  # half of the bottom-left token
    p = coverage_target(mask, 56, 28)
    np.testing.assert_allclose(p, [0, 2 / 3, 1 / 3, 0], rtol=1e-6)
    # a scene mask larger than the model input is resized first; a speck that covers no token whole
    # still gets a target: the token under its centre
    big = np.zeros((112, 112), np.uint8)
    big[100:102, 10:12] = 1
    np.testing.assert_array_equal(coverage_target(big, 56, 28), [0, 0, 1, 0])
    with pytest.raises(ValueError, match="empty"):
        coverage_target(np.zeros((56, 56), np.uint8), 56, 28)


def test_answer_token_indices_start_at_the_answer_tag(tiny_world):
    from segzero_edge.reference.qwen import load_qwen_processor

    text = (
        '<think>the red star.</think><answer>{"bbox": [1,2,30,40], "points_1": [5,6], '
        '"points_2": [7,8]}</answer><|im_end|>'
    )
    tok = load_qwen_processor(tiny_world[0]).tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    idx = answer_token_indices(tok, text)
    assert idx == tuple(range(idx[0], len(ids)))  # contiguous, to the end
    assert "star" in tok.decode(ids[: idx[0]]) and "bbox" not in tok.decode(ids[: idx[0]])
    assert tok.decode(ids[idx[0] :]).startswith("answer") or tok.decode(ids[idx[0] :]).startswith("<answer")


def test_mention_token_groups_map_think_phrases_and_the_answer_to_their_objects(tiny_world):
    from segzero_edge.reference.qwen import load_qwen_processor

    reasoning = "I see 2 shapes: a red star at the top, a blue circle at the bottom. The star is red."
    mentions = [(16, 37, 3), (39, 66, 0)]  # "a red star at the top", "a blue circle at the bottom"
    assert reasoning[16:37] == "a red star at the top" and reasoning[39:66] == "a blue circle at the bottom"
    text = (
        f'<think>{reasoning}</think><answer>{{"bbox": [1,2,30,40], "points_1": [5,6], '
        '"points_2": [7,8]}</answer><|im_end|>'
    )
    tok = load_qwen_processor(tiny_world[0]).tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    idx, objs = mention_token_groups(tok, text, len("<think>"), mentions, answer_object=5)
    assert len(idx) == len(objs) and list(idx) == sorted(idx)
    said = {k: tok.decode([ids[i] for i, o in zip(idx, objs) if o == k]) for k in set(objs)}
    assert said[3].strip() == "a red star at the top"
    assert said[0].strip() == "a blue circle at the bottom"
    assert said[5].lstrip("<").startswith("answer>") and said[5].endswith("</answer><|im_end|>")
    # the answer runs to the end; nothing between the mentions and the answer is supervised
    assert idx[objs.index(5) :] == tuple(range(idx[objs.index(5)], len(ids)))
    assert "The star" not in tok.decode([ids[i] for i in idx])
    assert answer_token_indices(tok, text) == idx[objs.index(5) :]


def test_attention_loss_is_the_cross_entropy_against_the_coverage():
    n_layers, heads, seq = 3, 2, 10
    ids = torch.tensor([[0, 7, 7, 7, 7, 1, 2, 3, 4, 5]])  # image token id 7 at positions 1-4
    p = np.array([0.5, 0.5, 0.0, 0.0], np.float32)
    uniform = torch.full((1, heads, seq, seq), 1 / seq)
    loss = attention_loss((uniform,) * n_layers, ids, 7, [(6, 7)], [p])
    assert float(loss) == pytest.approx(math.log(seq), rel=1e-5)
    # all the supervised head's mass on the covered tokens: the loss is the coverage's entropy
    focused = uniform.clone()
    focused[0, HEAD, :, :] = 0
    focused[0, HEAD, :, 1:3] = 0.5
    loss = attention_loss((uniform,) + (focused,) * (n_layers - FIRST_LAYER), ids, 7, [(6, 7)], [p])
    assert float(loss) == pytest.approx(math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="image tokens"):
        attention_loss((uniform,) * n_layers, ids, 7, [(6,)], [np.ones(3, np.float32) / 3])
    # one target per query position: position 6 looks at tokens 1-2 (perfect), position 7 at token 4 (missed)
    per_pos = np.array([[0.5, 0.5, 0, 0], [0, 0, 0, 1]], np.float32)
    loss = attention_loss((uniform,) + (focused,) * (n_layers - FIRST_LAYER), ids, 7, [(6, 7)], [per_pos])
    assert float(loss) == pytest.approx((math.log(2) - math.log(1e-9)) / 2, rel=1e-4)
    with pytest.raises(ValueError, match="query positions"):
        attention_loss((uniform,) * n_layers, ids, 7, [(6, 7, 8)], [per_pos])


def test_sft_with_answer_attention_learns_to_look_at_the_target(tiny_world, tmp_path):
    from segzero_edge.world.sft import SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(
        steps=12, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=6, threads=1, answer_attention_weight=1.0
    )
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    attn = [a["attn"] for a in out["aux"]]
    assert len(attn) == 12 and all(np.isfinite(attn))
    assert np.mean(attn[-3:]) < attn[0] - 0.3, attn  # the supervised heads move onto the targets
    plain = run_sft(
        ckpt,
        tmp_path / "plain",
        written["train_segzero"],
        written["train"],
        SFTConfig(**{**cfg.__dict__, "answer_attention_weight": 0.0}),
        progress=False,
    )
    # the eager kernel computes the same first loss as the default one
    assert plain["losses"][0] == pytest.approx(out["losses"][0], abs=1e-4)
    from segzero_edge.errors import TrainingError

    with pytest.raises(TrainingError, match="answer_attention_weight"):  # a resume must keep the setting
        run_sft(
            ckpt,
            tmp_path / "sft",
            written["train_segzero"],
            written["train"],
            SFTConfig(**{**cfg.__dict__, "steps": 14, "answer_attention_weight": 0.5}),
            progress=False,
        )
    with pytest.raises(TrainingError, match="attention_mentions"):
        run_sft(
            ckpt,
            tmp_path / "sft",
            written["train_segzero"],
            written["train"],
            SFTConfig(**{**cfg.__dict__, "steps": 14, "attention_mentions": True}),
            progress=False,
        )


def test_sft_with_mentions_supervises_the_think_phrases_too(tiny_world, tmp_path):
    from segzero_edge.world.dataset import read_index
    from segzero_edge.world.sft import SFTConfig, load_rows, run_sft

    ckpt, written = tiny_world
    from segzero_edge.reference.qwen import load_qwen_processor

    tok = load_qwen_processor(ckpt).tokenizer
    answer_only = load_rows(written["train_segzero"], written["train"], tok, 112, 4, attention_token_px=28)
    mentions = load_rows(written["train_segzero"], written["train"], tok, 112, 4, attention_token_px=28, mentions=True)
    records = {r["id"]: r for r in read_index(written["train"])}
    for a, m in zip(answer_only, mentions):
        assert a.coverage.shape == (16,) and m.coverage.shape == (len(m.attn_idx), 16)
        assert set(a.attn_idx) < set(m.attn_idx)  # the answer, and the think's phrases before it
        np.testing.assert_allclose(m.coverage[-1], a.coverage)  # the answer still looks at the target
        np.testing.assert_allclose(m.coverage.sum(axis=1), 1, rtol=1e-5)
    assert any(len({tuple(c) for c in m.coverage}) >= 2 for m in mentions)  # phrases about other shapes
    assert len(records) == 16

    cfg = SFTConfig(
        steps=12,
        batch_size=4,
        learning_rate=3e-3,
        warmup_steps=0,
        save_steps=6,
        threads=1,
        answer_attention_weight=1.0,
        attention_mentions=True,
    )
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    attn = [a["attn"] for a in out["aux"]]
    assert np.mean(attn[-3:]) < attn[0] - 0.3, attn
    from segzero_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="attention_mentions"):
        SFTConfig(attention_mentions=True)
