"""The world SAM2's video-path trainer: what moves, what stays, and the loss of a window."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

FROZEN = ("image_encoder.", "sam_prompt_encoder.")


@pytest.fixture(scope="module")
def shipped():
    from segzero_edge.world import ASSETS
    from segzero_edge.world.sam2_model import build_model, load_checkpoint

    def load():
        return load_checkpoint(build_model(ASSETS / "sam2_tiny.yaml"), ASSETS / "sam2_tiny.pt")

    return load


def _moved(model, before) -> set[str]:
    after = model.state_dict()
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_steps_train_the_video_path_and_decoder_never_the_encoders(shipped):
    from segzero_edge.world.sam2_video_train import VIDEO_PATH, VideoTrainSettings, train_video

    model = shipped()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    log = train_video(model, VideoTrainSettings(steps=2, clip_frames=3, image_batch=2, image_scenes=4))
    assert len(log["history"]) == 2 and all(np.isfinite(h["loss"]) for h in log["history"])
    moved = _moved(model, before)
    assert any(k.startswith("memory_attention.") for k in moved) and any(k.startswith("memory_encoder.") for k in moved)
    assert any(k.startswith("sam_mask_decoder.") for k in moved)
    assert all(k.startswith((*VIDEO_PATH, "sam_mask_decoder.")) for k in moved)
    assert not any(k.startswith(FROZEN) for k in moved)
    assert not model.training  # left in eval mode


def test_frozen_decoder_moves_the_video_path_only(shipped):
    from segzero_edge.world.sam2_video_train import VIDEO_PATH, VideoTrainSettings, train_video

    model = shipped()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_video(model, VideoTrainSettings(steps=1, clip_frames=3, decoder=False, image_batch=0))
    moved = _moved(model, before)
    assert moved and all(k.startswith(VIDEO_PATH) for k in moved)


def test_window_loss_and_still_loss_are_differentiable(shipped):
    from segzero_edge.world.sam2_data import SceneStore
    from segzero_edge.world.sam2_video_train import clip_loss, still_loss, window

    model = shipped()
    frames, masks, prompt = window(np.random.default_rng(0), 3)
    assert len(frames) == 3 and masks.shape[0] == 3 and masks[0].sum() >= 16  # the prompt frame shows the target
    loss, right = clip_loss(model, frames, masks, prompt)
    assert loss.ndim == 0 and loss.requires_grad and 0.0 <= right <= 1.0
    still = still_loss(model, SceneStore.from_split("train", 3), 2, np.random.default_rng(0))
    assert still.ndim == 0 and still.requires_grad and torch.isfinite(still)


def test_window_never_draws_a_test_clip(monkeypatch):
    from segzero_edge.world import sam2_video_train
    from segzero_edge.world.track_eval import TEST_SEEDS

    drawn = []
    real = sam2_video_train.generate_clip
    monkeypatch.setattr(sam2_video_train, "generate_clip", lambda seed, n: drawn.append(seed) or real(seed, n))

    class Rigged:  # the first clip seed drawn is a test seed: it must be skipped
        def __init__(self):
            self.rng, self.first = np.random.default_rng(1), True

        def integers(self, lo, hi=None):
            if hi == 2**31 and self.first:
                self.first = False
                return TEST_SEEDS + 3
            return self.rng.integers(lo, hi)

        def choice(self, xs):
            return self.rng.choice(xs)

    sam2_video_train.window(Rigged(), 3)
    assert drawn and TEST_SEEDS + 3 not in drawn


def test_prime_makes_cross_attention_positional_and_mask_signal_as_strong_as_the_image(shipped):
    from segzero_edge.world.clips import generate_clip
    from segzero_edge.world.sam2_video_train import CROSS_ATTENTION_GAIN, POSITION_BIAS, prime_video_path

    model = shipped()
    frame = generate_clip(5, 8).frames[0]
    attn = model.memory_attention.layers[0].cross_attn_image
    out_before = attn.out_proj.weight.detach().clone()
    primed = prime_video_path(model, frame)
    assert primed["mask_gain"] == pytest.approx(primed["image_std"] / primed["mask_std"])
    again = prime_video_path(model, frame)  # measured on the primed model: the spreads are equal now
    assert again["mask_gain"] == pytest.approx(1.0, rel=1e-4)
    assert again["mask_std"] == pytest.approx(again["image_std"], rel=1e-4)
    assert not attn.q_proj.weight.any() and not attn.k_proj.weight.any()
    assert torch.all(attn.q_proj.bias == POSITION_BIAS) and torch.all(attn.k_proj.bias == POSITION_BIAS)
    assert torch.allclose(attn.out_proj.weight, out_before * CROSS_ATTENTION_GAIN**2)  # primed twice
