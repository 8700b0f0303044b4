"""Answer-attention supervision of the world reasoner's SFT (training/world/attention.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from segzero_edge.training.world.attention import (  # noqa: E402
    FIRST_LAYER,
    HEAD,
    answer_token_indices,
    attention_loss,
    coverage_target,
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
    from segzero_edge.backends.hf_loading import load_qwen_processor

    text = ('<think>the red star.</think><answer>{"bbox": [1,2,30,40], "points_1": [5,6], '
            '"points_2": [7,8]}</answer><|im_end|>')
    tok = load_qwen_processor(tiny_world[0]).tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    idx = answer_token_indices(tok, text)
    assert idx == tuple(range(idx[0], len(ids)))  # contiguous, to the end
    assert "star" in tok.decode(ids[: idx[0]]) and "bbox" not in tok.decode(ids[: idx[0]])
    assert tok.decode(ids[idx[0]:]).startswith("answer") or tok.decode(ids[idx[0]:]).startswith("<answer")


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


def test_sft_with_answer_attention_learns_to_look_at_the_target(tiny_world, tmp_path):
    from segzero_edge.training.world.sft import SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(steps=12, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=6, threads=1,
                    answer_attention_weight=1.0)
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    attn = [a["attn"] for a in out["aux"]]
    assert len(attn) == 12 and all(np.isfinite(attn))
    assert np.mean(attn[-3:]) < attn[0] - 0.3, attn  # the supervised heads move onto the targets
    plain = run_sft(ckpt, tmp_path / "plain", written["train_segzero"], written["train"],
                    SFTConfig(**{**cfg.__dict__, "answer_attention_weight": 0.0}), progress=False)
    # the eager kernel computes the same first loss as the default one
    assert plain["losses"][0] == pytest.approx(out["losses"][0], abs=1e-4)
    from segzero_edge.errors import TrainingError

    with pytest.raises(TrainingError, match="answer_attention_weight"):  # a resume must keep the setting
        run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"],
                SFTConfig(**{**cfg.__dict__, "steps": 14, "answer_attention_weight": 0.5}), progress=False)
