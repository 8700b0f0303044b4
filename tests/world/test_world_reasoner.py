"""The world's tiny reasoner: SFT learns and resumes exactly. (The shipped checkpoint's accuracy through
export and the runtime: tests/world/test_world_accuracy.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

#: Required drop of the SFT loss (mean of the last 2 steps vs the first step) in 8 steps.
SFT_LOSS_DROP = 0.5


def test_few_sft_steps_reduce_the_loss(tiny_world, tmp_path):
    from segzero_edge.world.sft import SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(steps=8, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=4, threads=1)
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    losses = out["losses"]
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert losses[0] - np.mean(losses[-2:]) >= SFT_LOSS_DROP, losses
    assert (out["final"] / "model.safetensors").exists()
    assert json.loads((out["final"] / "segzero_edge.json").read_text())["input_size"] == 112

    # an interrupted run (stopped after 3 steps, state saved) resumes and ends with the same weights
    part = run_sft(
        ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False, stop_after=3
    )
    assert part["final"] is None and part["steps"] == 3
    rest = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False)
    assert rest["losses"] == losses
    from safetensors.numpy import load_file

    a, b = load_file(out["final"] / "model.safetensors"), load_file(rest["final"] / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_grounding_targets_follow_the_label_map():
    from segzero_edge.world.grounding import COLOR_NAMES, token_targets

    labels = np.zeros((56, 56), np.uint8)
    labels[0:28, 28:56] = 1  # object 0 fills the top-right token
    labels[30:50, 2:20] = 2  # object 1 covers most of the bottom-left token
    labels[40:44, 40:44] = 1  # a speck of object 0 in the bottom-right token: below min_cover
    t = token_targets(labels, [{"color": "red", "shape": "star"}, {"color": "blue", "shape": "circle"}], 56)
    assert t.color.tolist() == [0, 1 + COLOR_NAMES.index("red"), 1 + COLOR_NAMES.index("blue"), 0]
    assert t.shape.tolist()[:3] == [0, 5, 1]  # SHAPES: circle, square, triangle, diamond, star, hexagon
    np.testing.assert_allclose(t.box[1], [28 / 56, 0, 55 / 56, 43 / 56])  # object 0's box includes the speck
    np.testing.assert_allclose(t.box[2], [2 / 56, 30 / 56, 19 / 56, 49 / 56])
    np.testing.assert_allclose(t.center, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def test_digit_targets_are_the_answer_digits_of_the_covering_object():
    from segzero_edge.training.data import record_geometry
    from segzero_edge.world.grounding import (
        DIGIT_PROBLEMS,
        IGNORE,
        answer_digits,
        token_targets,
    )

    assert answer_digits((7, 45, 123, 210, 0, 99, 100, 5)).tolist() == [0, 0, 0, 4, 1, 2, 2, 1, 0, 0, 0, 9, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="8 numbers"):
        answer_digits((1, 2, 3))
    labels = np.zeros((224, 224), np.uint8)
    labels[0:112, 112:224] = 1
    labels[130:200, 10:90] = 2
    objects = [{"color": "red", "shape": "star"}, {"color": "blue", "shape": "circle"}]
    t = token_targets(labels, objects, 112, token_px=28, digits=True)  # a 224 px scene at a 112 px input
    assert t.digits.shape == (16, DIGIT_PROBLEMS)
    box, points, _ = record_geometry(labels == 1, 112)
    want = answer_digits((*box, *points[0], *points[1]))
    assert box[0] == 56 and want[:2].tolist() == [0, 5]  # model-input pixels, not scene pixels
    assert (t.digits[t.color == t.color[3]] == want).all()  # every token of object 0: its answer's digits
    assert (t.digits[t.color == 0] == IGNORE).all()
    assert token_targets(labels, objects, 112, token_px=28).digits is None


def test_sft_with_the_grounding_loss_trains_the_head_and_resumes_exactly(tiny_world, tmp_path):
    from segzero_edge.world.sft import STATE_FILE, SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(
        steps=6, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=3, threads=1, grounding_weight=1.0
    )
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    plain = run_sft(
        ckpt,
        tmp_path / "plain",
        written["train_segzero"],
        written["train"],
        SFTConfig(**{**cfg.__dict__, "grounding_weight": 0.0}),
        progress=False,
    )
    assert plain["losses"][0] == out["losses"][0]  # same start; the grounding loss changes the updates
    assert plain["losses"][1:] != out["losses"][1:]
    head = torch.load(tmp_path / "sft" / STATE_FILE, weights_only=False)["grounding_head"]
    assert set(head) == {"weight", "bias"}
    from safetensors.numpy import load_file

    final = load_file(out["final"] / "model.safetensors")
    assert not any("grounding" in k for k in final)  # the checkpoint stays a plain Qwen2.5-VL
    part = run_sft(
        ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False, stop_after=2
    )
    rest = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False)
    assert part["final"] is None and rest["losses"] == out["losses"]
    again = load_file(rest["final"] / "model.safetensors")
    assert all(np.array_equal(final[k], again[k]) for k in final)

    digits = run_sft(
        ckpt,
        tmp_path / "digits",
        written["train_segzero"],
        written["train"],
        SFTConfig(**{**cfg.__dict__, "grounding_digits": True}),
        progress=False,
    )
    parts = [a["digits"] for a in digits["aux"]]
    assert parts[0] == pytest.approx(np.log(10), abs=0.5) and parts[-1] < parts[0], parts
    assert digits["losses"][0] == out["losses"][0]  # the language-model loss starts the same
    from segzero_edge.errors import TrainingError

    with pytest.raises(TrainingError, match="grounding_digits"):  # a resume must keep the setting
        run_sft(
            ckpt,
            tmp_path / "digits",
            written["train_segzero"],
            written["train"],
            SFTConfig(**{**cfg.__dict__, "steps": 8}),
            progress=False,
        )
