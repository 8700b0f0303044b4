"""The world's seeded clips: the target leaves, comes back and is occluded; masks match the frames."""

from __future__ import annotations

import numpy as np

from segzero_edge.world.clips import generate_clip
from segzero_edge.world.scenes import COLORS


def test_a_clip_has_an_exit_a_return_and_an_occlusion():
    clip = generate_clip(3, 30)
    areas = clip.target_masks.reshape(30, -1).sum(1)
    assert len(clip.frames) == 30 and clip.masks.shape == (30, len(clip.objects), 224, 224)
    assert areas[0] > 0 and clip.query.kind == "attribute"
    gone = np.flatnonzero(areas == 0)
    assert len(gone) >= 3  # outside the frame or hidden
    assert areas[gone[0] - 1] > 0 and (areas[gone[-1] + 1 :] > 0).any()  # it was there before and comes back
    # The occluder is drawn last, over the target, late in the clip; its own mask is never occluded.
    late = range(int(0.7 * 30), 30)
    overlap = [int((clip.masks[k, clip.occluder]).sum()) for k in late]
    assert min(overlap) > 0


def test_masks_are_where_the_shapes_are_painted():
    clip = generate_clip(5, 12)
    obj = clip.objects[clip.query.target]
    color = np.asarray(COLORS[obj.color], np.float32)
    for k in (0, 11):
        m = clip.target_masks[k]
        if m.sum() > 50:
            inner = m & np.roll(m, 2, 0) & np.roll(m, -2, 0) & np.roll(m, 2, 1) & np.roll(m, -2, 1)
            pixels = clip.frames[k][inner].astype(np.float32)
            assert np.abs(pixels.mean(0) - color).max() < 45  # the target's colour (textures shade it)


def test_clips_are_a_pure_function_of_the_seed():
    a, b = generate_clip(7, 10), generate_clip(7, 10)
    np.testing.assert_array_equal(np.stack(a.frames), np.stack(b.frames))
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.query == b.query
    assert not np.array_equal(np.stack(generate_clip(8, 10).frames), np.stack(a.frames))
