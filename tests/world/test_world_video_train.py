"""The world SAM2's video-path trainer: one step moves only the video path, the still-image path stays."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")


def test_one_step_trains_the_video_path_only():
    from segzero_edge.world import ASSETS
    from segzero_edge.world.sam2_model import build_model, load_checkpoint
    from segzero_edge.world.sam2_video_train import VIDEO_PATH, VideoTrainSettings, clip_loss, train_video, window

    model = load_checkpoint(build_model(ASSETS / "sam2_tiny.yaml"), ASSETS / "sam2_tiny.pt")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    log = train_video(model, VideoTrainSettings(steps=2, clip_frames=3))
    assert len(log["history"]) == 2 and all(np.isfinite(h["loss"]) for h in log["history"])
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(VIDEO_PATH) for k in moved)
    assert any(k.startswith("memory_attention.") for k in moved) and any(k.startswith("memory_encoder.") for k in moved)
    assert not model.training  # left in eval mode
    # The loss of a window is a differentiable scalar and the presence score a share.
    frames, masks, prompt = window(np.random.default_rng(0), 3)
    loss, right = clip_loss(model, frames, masks, prompt)
    assert loss.ndim == 0 and loss.requires_grad and 0.0 <= right <= 1.0
