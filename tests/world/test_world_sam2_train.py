"""The tiny SAM2 training loop learns (seeded), and its prompts follow the Seg-Zero geometry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch (train extra)")
pytest.importorskip("sam2", reason="needs the official sam2 package (make install installs it)")

from segzero_edge.errors import ConfigError  # noqa: E402
from segzero_edge.training.data import mask_box  # noqa: E402
from segzero_edge.world.sam2_data import SceneStore, gt_prompt, sample_prompt  # noqa: E402
from segzero_edge.world.sam2_model import (  # noqa: E402
    build_model,
    decode,
    default_config_path,
    encode,
)
from segzero_edge.world.sam2_train import TrainSettings, make_batch, mask_losses, train  # noqa: E402


@pytest.fixture(scope="module")
def store() -> SceneStore:
    return SceneStore.from_split("train", 6)


def test_prompts_are_inside_the_mask(store):
    rng = np.random.default_rng(0)
    for i in range(len(store)):
        for k in range(int(store.num_objects[i])):
            m = store.mask(i, k)
            x1, y1, x2, y2 = mask_box(m)
            gt = gt_prompt(m)
            assert gt.box.tolist() == [x1, y1, x2, y2]
            for p in (gt, sample_prompt(m, rng)):
                assert all(m[int(y), int(x)] for x, y in p.points)
                side = max(x2 - x1, y2 - y1) + 1
                assert np.abs(p.box - gt.box).max() <= 0.08 * side + 1e-3
                assert p.box[0] <= p.box[2] and p.box[1] <= p.box[3]


def _fixed_batch_loss(model, store) -> float:
    rng = np.random.default_rng(123)
    images, index, coords, labels, target = make_batch(store, np.arange(len(store)), 3, rng, 112)
    model.eval()
    with torch.no_grad():
        low, iou, obj = decode(model, encode(model, images), index, coords, labels)
        loss, _ = mask_losses(low, iou, obj, target)
    return float(loss)


def test_training_steps_reduce_the_loss(store, tmp_path):
    torch.set_num_threads(2)
    before = _fixed_batch_loss(build_model(default_config_path(), seed=0), store)
    s = TrainSettings(
        config=str(default_config_path()),
        seed=0,
        steps=25,
        batch=3,
        objects=3,
        lr=2e-3,
        warmup=1,
        train_scenes=len(store),
        val_scenes=0,
        threads=2,
        minutes=600,
    )  # the step count ends the run, not the clock (the machine is shared)
    model, log = train(s, tmp_path, progress=False, store=store)
    after = _fixed_batch_loss(model, store)
    assert log["steps"] == 25
    assert after < 0.7 * before, (before, after)
    # the run wrote the official checkpoint format and a copy of its config
    state = torch.load(Path(tmp_path) / "sam2_tiny.pt", map_location="cpu", weights_only=True)
    assert set(state) == {"model"} and (Path(tmp_path) / "sam2_tiny.yaml").is_file()


def test_an_interrupted_run_resumes_to_the_same_weights(store, tmp_path):
    torch.set_num_threads(1)
    s = TrainSettings(
        config=str(default_config_path()),
        seed=0,
        steps=4,
        batch=2,
        objects=2,
        lr=2e-3,
        warmup=1,
        train_scenes=len(store),
        val_scenes=0,
        threads=1,
        minutes=600,
    )
    whole, _ = train(s, tmp_path / "whole", progress=False, store=store)
    _, log = train(s, tmp_path / "resumed", progress=False, store=store, stop_after=2)
    assert log is None and (tmp_path / "resumed" / "train_state.pt").is_file()
    resumed, log = train(s, tmp_path / "resumed", progress=False, store=store)
    assert log["steps"] == 4 and len(log["history"]) >= 2
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="other settings"):
        train(dataclasses.replace(s, lr=1e-3), tmp_path / "resumed", progress=False, store=store)
