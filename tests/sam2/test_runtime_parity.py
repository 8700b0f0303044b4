"""The runtime SAM2 stage (numpy/PIL + ONNX Runtime) against the official pipeline, on images and
prompts the export-time validation did not see."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sam2_testutil import nontrivial

from segzero_edge.sam2.contract import POINT_COORDS
from segzero_edge.sam2.host import mask_iou

pytest.importorskip("torch", reason="the official pipeline is the oracle")
from segzero_edge.export.sam2_export.samples import prompt_cases, synthetic_image
from segzero_edge.reference.torch_sam2 import OfficialPredictor, segzero_choice

SIZES = [(360, 500), (900, 700)]


@pytest.fixture(scope="module")
def encoded(runtime, official_model):
    """Per test image: (rgb, runtime features, official predictor with that image set)."""
    out = []
    for i, (h, w) in enumerate(SIZES):
        rgb = synthetic_image(h, w, seed=100 + i)
        oracle = OfficialPredictor(official_model)
        oracle.set_image(rgb)
        out.append((rgb, runtime.encode(Image.fromarray(rgb)), oracle))
    return out


def _official(oracle, case, mode, mask_input=None):
    masks, scores, low = oracle.predict(
        case.points, case.labels, case.boxes, mask_input, multimask_output=(mode == "best")
    )
    n = case.num_objects
    masks, scores, low = (np.asarray(a).reshape(n, -1, *np.shape(a)[-2:]) for a in (masks, scores[..., None], low))
    if mode == "best":
        best = np.argmax(scores[:, :, 0, 0], axis=1)
        rows = np.arange(n)
        return masks[rows, best], scores[rows, best, 0, 0], low[rows, best], best + 1
    return masks[:, 0], scores[:, 0, 0, 0], low[:, 0], None


@pytest.mark.parametrize("mode", ["best", "single"])
def test_every_prompt_kind_matches_official(encoded, runtime, mode):
    """Image 0: every prompt kind; image 1 (downscaled, other aspect): Seg-Zero's box + 2 points."""
    ious, seen_nontrivial = [], 0
    for i, (rgb, feats, oracle) in enumerate(encoded):
        h, w = rgb.shape[:2]
        assert feats.image_size == (w, h)
        cases = prompt_cases(h, w, seed=100 + i)
        for case in cases if i == 0 else cases[:1]:
            prev = None
            if case.use_previous_mask:  # refine with the runtime's own previous logits, as a user would
                first = runtime.decode(feats, box=case.boxes, points=case.points, labels=case.labels)
                prev = first.low_res_logits
            res = runtime.decode(
                feats,
                box=case.boxes,
                points=case.points,
                labels=case.labels,
                mask_input=prev,
                mask_mode=mode,
            )
            ref_masks, ref_scores, ref_low, ref_idx = _official(oracle, case, mode, prev)
            assert res.masks.shape == (case.num_objects, h, w) and res.masks.dtype == bool
            np.testing.assert_allclose(res.scores, ref_scores, atol=1e-4)
            np.testing.assert_allclose(res.low_res_logits, ref_low, atol=1e-3)
            if ref_idx is not None:
                assert res.chosen.tolist() == ref_idx.tolist()
            for k in range(case.num_objects):
                ious.append(mask_iou(res.masks[k], ref_masks[k]))
                seen_nontrivial += nontrivial(ref_masks[k])
    assert min(ious) >= 0.99, min(ious)
    assert seen_nontrivial >= len(ious) // 2


def test_n_objects_in_one_call_equal_one_by_one(encoded, runtime):
    rgb, feats, oracle = encoded[0]
    h, w = rgb.shape[:2]
    case = next(c for c in prompt_cases(h, w, seed=100) if c.kind == "3 objects")
    together = runtime.decode(feats, box=case.boxes, points=case.points, labels=case.labels)
    assert len(together) == 3 and together.masks.shape == (3, h, w)
    ref_masks, ref_scores, *_ = _official(oracle, case, "best")
    for k in range(3):
        alone = runtime.decode(feats, box=case.boxes[k], points=case.points[k], labels=case.labels[k])
        np.testing.assert_allclose(alone.low_res_logits[0], together.low_res_logits[k], atol=1e-4)
        assert mask_iou(alone.masks[0], together.masks[k]) >= 0.999
        assert mask_iou(together.masks[k], ref_masks[k]) >= 0.99
    np.testing.assert_allclose(together.scores, ref_scores, atol=1e-4)
    assert not np.array_equal(together.masks[0], together.masks[1])  # different prompts, different masks


def test_objects_with_different_prompt_lengths(encoded, runtime):
    """A box-only object and a box + 2 points object in one call: each gets exactly its own tokens."""
    rgb, feats, _ = encoded[1]
    h, w = rgb.shape[:2]
    boxes = np.array([[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.3 * h, 0.9 * w, 0.9 * h]], np.float32)
    points = [np.zeros((0, 2), np.float32), np.array([[0.6 * w, 0.5 * h], [0.7 * w, 0.7 * h]], np.float32)]
    mixed = runtime.decode(feats, box=boxes, points=points)
    first = runtime.decode(feats, box=boxes[0])
    second = runtime.decode(feats, box=boxes[1], points=points[1])
    np.testing.assert_allclose(mixed.low_res_logits[0], first.low_res_logits[0], atol=1e-5)
    np.testing.assert_allclose(mixed.low_res_logits[1], second.low_res_logits[0], atol=1e-5)


def test_result_is_frozen_and_documented_shapes(encoded, runtime):
    _, feats, _ = encoded[0]
    res = runtime.decode(feats, points=[[100, 100]], mask_mode="single")
    assert res.low_res_logits.shape == (1, 256, 256) and res.iou_scores.shape == (1, 4)
    assert res.object_score_logits.shape == (1,) and res.chosen.dtype == np.int64
    assert np.abs(res.low_res_logits).max() <= 32.0
    assert set(res.timings_ms) == {"decoder", "postprocess"} and set(feats.timings_ms) == {
        "preprocess",
        "encoder",
    }
    with pytest.raises(ValueError):
        res.masks[0, 0, 0] = True
    with pytest.raises(AttributeError):
        res.scores = None
    empty = runtime.decode(feats, box=np.zeros((0, 4), np.float32))
    assert len(empty) == 0 and empty.masks.shape == (0, *feats.image_size[::-1])
    # masks at another size on request (e.g. a resized copy of the image)
    assert runtime.decode(feats, points=[[10, 10]], image_size=(50, 40)).masks.shape == (1, 40, 50)


def test_segment_convenience_and_seg_zero_choice(encoded, runtime):
    rgb, _, oracle = encoded[0]
    h, w = rgb.shape[:2]
    box, pts = [0.2 * w, 0.2 * h, 0.7 * w, 0.8 * h], [[0.4 * w, 0.5 * h], [0.5 * w, 0.6 * h]]
    res = runtime.segment(rgb, box=box, points=pts)
    masks, scores, _ = oracle.predict(np.array(pts), np.ones(2), np.array(box), multimask_output=True)
    ref_mask, ref_score, ref_idx = segzero_choice(masks[None], scores[None])
    assert res.chosen[0] == ref_idx[0] and abs(res.scores[0] - ref_score[0]) <= 1e-4
    assert mask_iou(res.masks[0], ref_mask[0]) >= 0.99


def test_vision_reasoner_prompts_in_one_call_match_official_per_object(encoded, runtime):
    """VisionReasoner's SAM2 prompting: per object ``predict(point_coords=[pt], point_labels=[1], box=bbox)``
    with 3 masks and the best score kept, object by object (the official loop); the runtime decodes all N
    objects (box + 1 point, P = 3, no extra padding point) in one decoder call."""
    rng = np.random.default_rng(7)
    seen_nontrivial = 0
    for rgb, feats, oracle in encoded:
        h, w = rgb.shape[:2]
        n = 5
        x1, y1 = rng.uniform(0, 0.6 * w, n), rng.uniform(0, 0.6 * h, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(20, 0.4 * w, n), y1 + rng.uniform(20, 0.4 * h, n)], 1)
        pts = np.stack([rng.uniform(boxes[:, 0], boxes[:, 2]), rng.uniform(boxes[:, 1], boxes[:, 3])], 1)
        calls = []

        def counting(feeds, calls=calls, decode=runtime.backend.decode):
            calls.append(feeds[POINT_COORDS].shape)
            return decode(feeds)

        runtime.backend.decode = counting
        try:
            res = runtime.decode(feats, box=boxes, points=[p[None] for p in pts])
        finally:
            del runtime.backend.decode
        assert calls == [(n, 3, 2)]  # one call, two box corners + one point per object
        for k in range(n):
            masks, scores, _ = oracle.predict(pts[k][None], np.array([1]), boxes[k], None, multimask_output=True)
            best = int(np.argmax(scores))
            assert mask_iou(res.masks[k], np.asarray(masks[best], bool)) >= 0.999
            assert abs(float(res.scores[k]) - float(scores[best])) < 1e-4
            seen_nontrivial += nontrivial(np.asarray(masks[best], bool))
    assert seen_nontrivial >= 5
