"""``Track``: updates, multi-object calls, losses, re-reasoning on a scripted loss, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from segzero_edge.errors import InputError
from segzero_edge.tracker.clips import synthetic_clip
from segzero_edge.tracker.pipeline import TrackerPipeline
from segzero_edge.tracker.track import Track
from segzero_edge.types import Answer, AnswerObject


def _start(tracker, frame, reason=None, reason_after_lost=3, **prompts) -> Track:
    track = Track(tracker, (frame.shape[1], frame.shape[0]), reason=reason, reason_after_lost=reason_after_lost)
    track.start(frame, tracker.encode(frame), 0.0, prompts=prompts or None)
    return track


class CountingBackend:
    """The real ONNX Runtime backend, counting the calls of each graph."""

    def __init__(self, inner):
        self.inner, self.name, self.device = inner, inner.name, inner.device
        self.calls = {"attend": 0, "decode": 0, "encode_memory": 0}

    def attend(self, feeds):
        self.calls["attend"] += 1
        return self.inner.attend(feeds)

    def decode(self, feeds):
        self.calls["decode"] += 1
        return self.inner.decode(feeds)

    def encode_memory(self, feeds):
        self.calls["encode_memory"] += 1
        return self.inner.encode_memory(feeds)


def test_n_objects_are_tracked_with_one_call_per_graph_per_frame(world_engine, tracker):
    counting = CountingBackend(tracker.backend)
    pipe = TrackerPipeline(world_engine[0], sam2=tracker.sam2, backend=counting, device="cpu")
    clip = synthetic_clip(10, seed=1)
    boxes = [[20, 20, 120, 120], [150, 60, 260, 200], [30, 150, 90, 230]]
    track = _start(pipe, clip.frames[0], box=boxes)
    assert track.num_objects == 3 and len(track.last.objects) == 3
    assert counting.calls == {"attend": 0, "decode": 1, "encode_memory": 1}
    for i, frame in enumerate(clip.frames[1:], start=1):
        before = dict(counting.calls)
        res = track.update(frame)
        assert res.frame_index == i and len(res.objects) == 3
        assert {k: counting.calls[k] - before[k] for k in before} == {"attend": 1, "decode": 1, "encode_memory": 1}
        union = np.zeros_like(res.mask)
        for obj in res.objects:
            union |= obj.mask
            assert obj.lost == (obj.object_score <= 0 or not obj.mask.any())
        np.testing.assert_array_equal(union, res.mask)
        assert set(res.timings_ms) >= {
            "preprocess",
            "encoder",
            "memory_attention",
            "decoder",
            "memory_encoder",
            "total",
        }


def test_objects_with_different_point_counts_are_decoded_like_separate_prompts(tracker):
    """A box object and a 1-point object: each gets the official tokens (no padding), so its masks equal
    a track of that object alone."""
    clip = synthetic_clip(8, seed=2)
    both = _start(tracker, clip.frames[0], points=[np.array([[60.0, 60.0]]), np.array([[200.0, 120.0], [210, 130]])])
    alone = _start(tracker, clip.frames[0], points=[[200.0, 120.0], [210, 130]])
    for frame in clip.frames[1:]:
        a, b = both.update(frame), alone.update(frame)
        np.testing.assert_array_equal(a.objects[1].mask, b.objects[0].mask)


def test_a_long_stream_keeps_memory_and_buffers_constant(tracker):
    clip = synthetic_clip(12, seed=4)
    track = _start(tracker, clip.frames[0], box=list(clip.box))
    bank = track._bank
    size = bank.nbytes
    for i in range(300):
        track.update(clip.frames[1 + i % 11])
    assert track._bank is bank and bank.nbytes == size and track.frame_index == 301


def test_lost_objects_give_no_mask_and_the_track_goes_on(absent_engine):
    pipe = TrackerPipeline(absent_engine[0], device="cpu", threads=2)
    clip = synthetic_clip(8, seed=0)
    track = _start(pipe, clip.frames[0], box=list(clip.box))
    assert track.last.lost and not track.last.found and track.last.objects[0].lost
    for frame in clip.frames[1:]:
        res = track.update(frame)
        assert res.lost and not res.found and not res.mask.any() and "not visible" in res.error
        assert res.objects[0].object_score <= 0 and res.objects[0].box is None


def test_re_reasoning_after_a_scripted_loss_prompts_the_frame_it_ran_on(absent_engine, world_engine):
    """Every frame is lost (the 'absent' head): after 3 lost frames the reasoner runs in the background on
    that frame; the next update applies its answer there (the bank's prompt frame) and goes on."""
    pipe = TrackerPipeline(absent_engine[0], device="cpu", threads=2)
    clip = synthetic_clip(12, seed=0)
    release, started, seen = threading.Event(), threading.Event(), []
    answer = Answer(ok=True, box=clip.box, points=clip.points, objects=(AnswerObject(clip.box, clip.points),))

    def reason(rgb):
        seen.append(rgb.copy())
        started.set()
        release.wait(30)
        return answer, None

    track = _start(pipe, clip.frames[0], reason=reason, reason_after_lost=3, box=list(clip.box))
    results = [track.update(f) for f in clip.frames[1:3]]  # frames 1, 2: lost run reaches 3 on frame 2
    assert track.reasoning and started.wait(30) and len(seen) == 1
    np.testing.assert_array_equal(seen[0], clip.frames[2])
    results.append(track.update(clip.frames[3]))  # the reasoner is still blocked: tracking goes on
    assert results[-1].answer is None and track.reasoning
    assert not track.wait_for_reasoning(timeout=0.05)  # still blocked
    release.set()
    assert track.wait_for_reasoning(timeout=30)
    res = track.update(clip.frames[4])
    assert res.answer is answer and "reprompt" in res.timings_ms
    assert track._bank.prompt_frame == 2 and not track.reasoning
    assert [r.frame_index for r in [*results, res]] == [1, 2, 3, 4]
    track.close()


def test_reason_again_runs_in_the_background_and_never_reorders_results(tracker):
    clip = synthetic_clip(8, seed=6)
    calls = []

    def reason(rgb):
        calls.append(1)
        return Answer(ok=False, error="nothing there"), None

    track = _start(tracker, clip.frames[0], reason=reason, reason_after_lost=0, box=list(clip.box))
    track.reason_again()
    track.update(clip.frames[1])
    assert track.wait_for_reasoning(timeout=30)
    res = track.update(clip.frames[2])
    assert calls == [1] and res.answer is not None and not res.answer.ok  # nothing usable: keeps tracking
    assert track._bank.prompt_frame == 0 and res.frame_index == 2


def test_a_reasoner_that_segments_re_prompts_with_its_mask(tracker):
    """An engine that gives masks (LENS) re-prompts the memory with them on the frame it reasoned on; an empty
    mask is nothing usable (tracking goes on from the old prompt)."""
    clip = synthetic_clip(8, seed=6)
    answer = Answer(ok=True, box=clip.box, points=clip.points, objects=(AnswerObject(clip.box, clip.points),))
    masks = iter([clip.masks[1][None], np.zeros_like(clip.masks[1])[None]])

    def reason(rgb):
        return answer, next(masks)

    track = _start(tracker, clip.frames[0], reason=reason, reason_after_lost=0, box=list(clip.box))
    track.reason_again()
    track.update(clip.frames[1])
    assert track.wait_for_reasoning(timeout=30)
    res = track.update(clip.frames[2])
    assert res.answer is answer and "reprompt" in res.timings_ms and track._bank.prompt_frame == 1
    track.reason_again()
    track.update(clip.frames[3])
    assert track.wait_for_reasoning(timeout=30)
    res = track.update(clip.frames[4])
    assert "reprompt" not in res.timings_ms and track._bank.prompt_frame == 1
    track.close()


def test_bad_frames_and_calls_are_refused_with_what_to_do(tracker):
    clip = synthetic_clip(8, seed=0)
    track = _start(tracker, clip.frames[0], box=list(clip.box))
    with pytest.raises(InputError, match="320x240"):
        track.update(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(InputError):
        track.update(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError):
        track.update(np.zeros((240, 320, 3), np.float64))
    with pytest.raises(InputError):
        track.update(np.zeros((240, 320, 7), np.uint8))
    with pytest.raises(InputError, match="no instruction"):
        track.reason_again()
    assert track.frame_index == 1  # refused frames do not advance the track
    track.close()
    with pytest.raises(InputError, match="closed"):
        track.update(clip.frames[1])
    with pytest.raises(InputError, match="reason_after_lost"):
        Track(tracker, (320, 240), reason=None, reason_after_lost=-1)


def test_an_answer_object_outside_the_frame_is_left_out_of_the_prompts():
    """A multi-object answer whose one object has no area in the frame still prompts the others."""
    from segzero_edge.tracker.prompts import answer_prompts
    from segzero_edge.types import Answer, AnswerObject

    inside = AnswerObject(box=(10.0, 10.0, 40.0, 30.0), points=((20.0, 20.0),))
    outside = AnswerObject(box=(320.0, 0.0, 320.0, 40.0), points=((320.0, 20.0),))  # clipped to zero width
    answer = Answer(ok=True, box=outside.box, points=outside.points, objects=(outside, inside))
    prompts = answer_prompts(answer, (320, 240))
    assert prompts["box"] == [[10.0, 10.0, 40.0, 30.0]] and len(prompts["points"]) == 1
    only_outside = Answer(ok=True, box=outside.box, points=outside.points, objects=(outside,))
    assert answer_prompts(only_outside, (320, 240)) is None


def test_an_engine_mask_too_small_for_sam2s_input_is_nothing_usable():
    """A reasoner's mask that vanishes at the model's input size is left out (never an exception mid-track)."""
    from segzero_edge.tracker.prompts import answer_error, answer_prompts

    answer = Answer(ok=True)
    speck = np.zeros((1, 240, 320), bool)
    speck[0, 100, 100] = True
    assert answer_prompts(answer, (320, 240), speck, 224) is None
    assert "too small" in answer_error(answer, speck)
    blob = np.zeros((1, 240, 320), bool)
    blob[0, 50:90, 60:120] = True
    assert answer_prompts(answer, (320, 240), np.concatenate([speck, blob]), 224)["mask"].shape == (1, 240, 320)
