"""Tracks started from a mask (SAM2's ``add_new_mask``): the host resizing, the ``tracker.mask_prompt`` graph
against the official ``_use_mask_as_output``, and the user-facing ``seg.track(frame, mask=...)``."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from segzero_edge import Segmenter
from segzero_edge.errors import EngineIncompatibleError, InputError
from segzero_edge.tracker.clips import synthetic_clip
from segzero_edge.tracker.prompts import mask_inputs, resize_antialiased


@pytest.mark.parametrize(("hw", "out"), [((240, 320), (224, 224)), ((224, 224), (56, 56)), ((150, 210), (224, 224))])
def test_resize_is_torchs_antialiased_bilinear(hw, out):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    mask = np.zeros(hw, np.float32)
    mask[hw[0] // 4 : 3 * hw[0] // 4, hw[1] // 5 : hw[1] // 2] = 1.0
    mask[rng.random(hw) < 0.02] = 1.0
    for x in (mask, mask * 20 - 10):
        ref = F.interpolate(torch.from_numpy(x)[None, None], size=out, mode="bilinear", antialias=True)[0, 0]
        got = resize_antialiased(x, out)
        assert got.shape == out
        np.testing.assert_allclose(got, ref.numpy(), atol=3e-4 if x.min() < 0 else 2e-5)


def test_mask_prompt_graph_matches_the_official_use_mask_as_output(world_engine, tracker):
    """Object pointer, low-res logits and object score of a mask-prompted frame against ``SAM2Base``'s own
    method, for a mask with pixels and an empty one (the no-object pointer)."""
    import torch

    from segzero_edge.reference.sam2_model import load_sam2_model

    model = load_sam2_model(world_engine[1], str(tracker.settings.config), video=True)
    clip = synthetic_clip(8, seed=2)
    feats = tracker.encode(clip.frames[0])
    masks = np.stack([clip.masks[0], np.zeros_like(clip.masks[0])])
    step = tracker.mask_step(feats, masks)
    s = tracker.settings
    inputs = torch.from_numpy(mask_inputs(masks, s.image_size))
    pix = torch.from_numpy(feats.image_embed.copy()) - model.no_mem_embed.reshape(1, -1, 1, 1)
    high_res = [torch.from_numpy(feats.high_res_feats_0.copy()), torch.from_numpy(feats.high_res_feats_1.copy())]
    with torch.inference_mode():
        low, _, ious, _, _, ptr, score = model._use_mask_as_output(pix.expand(2, -1, -1, -1), high_res, inputs)
    np.testing.assert_allclose(step.obj_ptr, ptr.numpy(), atol=1e-4, rtol=1e-4)
    assert np.abs(step.obj_ptr[1] - model.no_obj_ptr.detach().numpy()[0]).max() < 1e-6
    np.testing.assert_allclose(step.mask_logits, low[:, 0].numpy(), atol=3e-4)
    np.testing.assert_array_equal(step.object_scores, score[:, 0].numpy())
    np.testing.assert_array_equal(step.scores, ious[:, 0].numpy())


def test_track_from_masks_follows_each_object(world_engine):
    clip = synthetic_clip(8, seed=0)
    h, w = clip.masks[0].shape
    rect = np.zeros((h, w), bool)
    rect[20:80, 200:300] = True
    with Segmenter(world_engine[0], device="cpu", threads=2) as seg:
        track = seg.track(clip.frames[0], mask=clip.masks[0])
        assert track.num_objects == 1 and track.last.found and track.last.answer is None
        assert "mask_prompt" in track.last.timings_ms
        # The prompted frame's mask is the given one (through SAM2's 4x-smaller logits).
        inter = (track.last.mask & clip.masks[0]).sum()
        assert inter / (track.last.mask | clip.masks[0]).sum() > 0.9
        assert track.update(clip.frames[1]).frame_index == 1
        two = seg.track(clip.frames[0], mask=np.stack([clip.masks[0], rect]).astype(np.uint8))
        assert two.num_objects == 2 and len(two.update(clip.frames[1]).objects) == 2


def test_bad_masks_say_what_to_do(world_engine):
    clip = synthetic_clip(8, seed=0)
    frame, mask = clip.frames[0], clip.masks[0]
    with Segmenter(world_engine[0], device="cpu", threads=2) as seg:
        with pytest.raises(InputError, match="does not fit the 320x240 frame"):
            seg.track(frame, mask=mask[:100])
        with pytest.raises(InputError, match="does not fit"):
            seg.track(frame, mask=np.zeros((2, 2, 240, 320), bool))
        speck = np.zeros_like(mask)
        speck[100, 100] = True  # one pixel of 320x240 is under half a pixel at 224: gone after >= 0.5
        with pytest.raises(InputError, match="mask 0 is too small"):
            seg.track(frame, mask=speck)
        with pytest.raises(InputError, match="mask 1 has no pixel set"):
            seg.track(frame, mask=np.stack([mask, np.zeros_like(mask)]))
        with pytest.raises(InputError, match="NaN"):
            seg.track(frame, mask=np.where(mask, np.nan, 0.0))
        with pytest.raises(InputError, match="not a bool mask"):
            seg.track(frame, mask=np.full((240, 320), "x"))
        with pytest.raises(InputError, match="either text or box"):
            seg.track(frame, mask=mask, box=list(clip.box))
        with pytest.raises(InputError, match="either text or box"):
            seg.track(frame, mask=mask, labels=[1])


def test_an_engine_without_the_mask_prompt_graph_says_how_to_get_it(tmp_path, world_engine):
    """Engines exported before ``tracker.mask_prompt`` existed still track from boxes; a mask start says why not."""
    from segzero_edge.manifest import load_manifest, save_manifest
    from segzero_edge.tracker.contract import MASK_PROMPT, MASK_PROMPT_FILE

    engine = tmp_path / "engine"
    shutil.copytree(world_engine[0], engine)
    m = load_manifest(engine)
    graphs = {k: v for k, v in m.graphs.items() if k != MASK_PROMPT}
    save_manifest(replace(m, graphs=graphs, files=tuple(f for f in m.files if f.path != MASK_PROMPT_FILE)), engine)
    (engine / MASK_PROMPT_FILE).unlink()
    clip = synthetic_clip(8, seed=0)
    with Segmenter(engine, device="cpu", threads=2) as seg:
        assert seg.track(clip.frames[0], box=list(clip.box)).update(clip.frames[1]).frame_index == 1
        with pytest.raises(EngineIncompatibleError, match="export tracker"):
            seg.track(clip.frames[0], mask=clip.masks[0])
