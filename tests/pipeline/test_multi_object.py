"""VisionReasoner engines end to end: the family in the manifest, its prompt, N masks from one
instruction in one decoder call, the empty answer, and the bad answers (too many objects, NaN)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from segzero_edge import Segmenter, decode_answer
from segzero_edge.errors import ConfigError, EngineIncompatibleError, InputError
from segzero_edge.sam2.contract import POINT_COORDS
from segzero_edge.types import AnswerObject


@pytest.fixture(scope="module")
def vr_engine_dir(full_engine_dir, tiny_qwen_dir, tmp_path_factory):
    """The pipeline engine with its reasoner re-exported as a VisionReasoner (the SAM2 component kept)."""
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner

    engine = tmp_path_factory.mktemp("vr") / "engine"
    shutil.copytree(full_engine_dir, engine)
    cfg = ReasonerExportConfig(weights="fp32", validate="quick", threads=1, family="vision_reasoner")
    export_reasoner(tiny_qwen_dir, engine, cfg)
    return engine


@pytest.fixture(scope="module")
def vr(vr_engine_dir):
    with Segmenter(vr_engine_dir, device="cpu", max_new_tokens=200, max_objects=3) as seg:
        yield seg


def _count_decoder_calls(seg):
    calls = []
    decode = seg.sam2.backend.decode

    def counting(feeds):
        calls.append(feeds[POINT_COORDS].shape)
        return decode(feeds)

    seg.sam2.backend.decode = counting
    return calls


def test_manifest_records_the_family_and_old_engines_are_seg_zero(vr_engine_dir, full_engine_dir, tmp_path):
    reasoner = json.loads((vr_engine_dir / "manifest.json").read_text())["components"]["reasoner"]
    assert reasoner["family"] == "vision_reasoner" and reasoner["answer"]["grammar"] == "vision_reasoner"
    with Segmenter(full_engine_dir, device="cpu") as seg:
        assert seg.reasoner.family == "seg_zero"
    # an engine written before the family was recorded (no "family", no "answer") reads as seg_zero
    old = tmp_path / "old"
    shutil.copytree(full_engine_dir, old)
    data = json.loads((old / "manifest.json").read_text())
    del data["components"]["reasoner"]["family"], data["components"]["reasoner"]["answer"]
    (old / "manifest.json").write_text(json.dumps(data))
    with Segmenter(old, device="cpu", verify="size") as seg:
        assert seg.reasoner.family == "seg_zero"
    # a family that disagrees with the answer grammar is refused
    data["components"]["reasoner"]["family"] = "vision_reasoner"
    data["components"]["reasoner"]["answer"] = {"format": 1, "grammar": "seg_zero", "model_size": [112, 112]}
    (old / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineIncompatibleError, match="family"):
        Segmenter(old, device="cpu", verify="size")


def test_the_engine_prompts_with_the_vision_reasoner_text(vr):
    from segzero_edge.prompt import vision_reasoner_user_text

    ids = vr.reasoner.tokenizer.encode_prompt("All the cups", vr.reasoner.num_image_tokens, family="vision_reasoner")
    ids_used, *_ = vr.reasoner.prompt("All the cups", np.zeros((vr.reasoner.num_image_tokens, 1), np.float32))
    assert np.array_equal(ids, ids_used)
    text = vr.reasoner.tokenizer.decode(ids, skip_special_tokens=False)
    assert vision_reasoner_user_text("All the cups") in text


def test_predict_segments_every_object_of_the_constrained_list_in_one_decoder_call(vr, scene):
    rgb, text = scene
    calls = _count_decoder_calls(vr)
    try:
        res = vr.predict(rgb, text)
    finally:
        del vr.sam2.backend.decode
    answer = res.answer
    assert answer.ok and 1 <= len(answer.objects) <= 3, res.raw_text
    assert res.raw_text.split("<answer>")[-1].startswith("[{")
    n = len(answer.objects)
    assert calls == [(n, 3, 2)]  # one call: box corners + one point per object
    assert len(res.objects) == n
    union = np.zeros(rgb.shape[:2], bool)
    for obj, a in zip(res.objects, answer.objects):
        assert obj.prompt_box == a.box and obj.points == a.points and len(obj.points) == 1
        union |= obj.mask
    assert np.array_equal(res.mask, union) and res.found == bool(union.any())


def _answer(objects: list, size: tuple[int, int]):
    text = "<think>the shapes</think><answer>" + json.dumps(objects) + "</answer>"
    return decode_answer(text, image_size=size, model_size=840)


def test_segment_answer_objects_match_one_by_one_and_colour_apart(vr, scene):
    from segzero_edge.overlay import PALETTE, draw_segmentation

    rgb, _ = scene
    h, w = rgb.shape[:2]
    objs = [
        {"bbox_2d": [40, 60, 300, 400], "point_2d": [150, 200]},
        {"bbox_2d": [420, 380, 800, 820], "point_2d": [600, 600]},
        {"bbox_2d": [500, 30, 780, 300], "point_2d": [640, 160]},
    ]
    answer = _answer(objs, (w, h))
    res = vr.segment(rgb, answer=answer)
    assert len(res.objects) == 3 and res.raw_text == answer.raw_text and res.reasoning == "the shapes"
    for obj in res.objects:
        alone = vr.segment(rgb, box=obj.prompt_box, points=obj.points)
        assert np.array_equal(alone.mask, obj.mask)
        assert abs(alone.score - obj.score) < 1e-5
        assert obj.box is None or obj.mask[int(obj.box[1]) : int(obj.box[3]), int(obj.box[0]) : int(obj.box[2])].any()
    image = np.asarray(draw_segmentation(rgb, res))
    for k, obj in enumerate(res.objects):
        only = obj.mask & ~np.logical_or.reduce([o.mask for j, o in enumerate(res.objects) if j != k])
        if only.sum() > 50:  # the object's own pixels are tinted with its own palette colour
            tint = np.asarray(PALETTE[k % len(PALETTE)], np.float64)
            moved = image[only].astype(np.float64).mean(0) - rgb[only].astype(np.float64).mean(0)
            assert float(np.dot(moved, tint - rgb[only].mean(0))) > 0


def test_empty_list_is_nothing_found_with_a_reason(vr, scene):
    rgb, _ = scene
    res = vr.segment(rgb, answer=_answer([], (rgb.shape[1], rgb.shape[0])))
    assert res.found is False and "no object" in res.error
    assert res.objects == () and not res.mask.any()


def test_more_objects_than_max_objects_keeps_the_first(vr, scene):
    rgb, _ = scene
    objs = [{"bbox_2d": [10 + 60 * i, 10, 60 + 60 * i, 90], "point_2d": [30 + 60 * i, 50]} for i in range(5)]
    answer = _answer(objs, (rgb.shape[1], rgb.shape[0]))
    assert len(answer.objects) == 5
    res = vr.segment(rgb, answer=answer)  # the Segmenter's max_objects=3
    assert len(res.objects) == 3
    assert [o.prompt_box for o in res.objects] == [o.box for o in answer.objects[:3]]
    assert len(vr.segment(rgb, answer=answer, max_objects=5).objects) == 5
    with pytest.raises(ConfigError, match="max_objects"):
        vr.segment(rgb, answer=answer, max_objects=0)


def test_nan_and_outside_objects(vr, scene):
    rgb, _ = scene
    size = (rgb.shape[1], rgb.shape[0])
    good = {"bbox_2d": [40, 60, 300, 400], "point_2d": [150, 200]}
    nan = '{"bbox_2d": [NaN, 1, 2, 3], "point_2d": [1, 1]}'
    text = f"<think>x</think><answer>[{nan}, {json.dumps(good)}]</answer>"
    answer = decode_answer(text, image_size=size)
    assert len(answer.objects) == 1  # the NaN object is skipped
    assert len(vr.segment(rgb, answer=answer).objects) == 1
    only_nan = decode_answer('<answer>[{"bbox_2d": [NaN, 1, 2, 3], "point_2d": [1, 1]}]</answer>', image_size=size)
    res = vr.segment(rgb, answer=only_nan)
    assert not res.found and res.error and not res.objects
    # an object whose box lies outside the image (an Answer built by hand: the decoder drops such
    # objects) is reported lost without running SAM2 for it
    decoded = decode_answer("<answer>" + json.dumps([good]) + "</answer>", image_size=size)
    w, h = size
    far = AnswerObject(box=(w + 10, h + 10, w + 50, h + 50), points=((w + 20.0, h + 20.0),))
    outside = replace(decoded, objects=(far, *decoded.objects), box=far.box, points=far.points)
    calls = _count_decoder_calls(vr)
    try:
        res = vr.segment(rgb, answer=outside)
    finally:
        del vr.sam2.backend.decode
    assert calls == [(1, 3, 2)]
    assert res.objects[0].lost and not res.objects[0].mask.any()
    assert np.array_equal(res.mask, res.objects[1].mask)


def test_segment_answer_argument_errors(vr, scene):
    rgb, _ = scene
    answer = _answer([{"bbox_2d": [1, 2, 30, 40], "point_2d": [5, 5]}], (rgb.shape[1], rgb.shape[0]))
    with pytest.raises(InputError, match="not both"):
        vr.segment(rgb, answer=answer, box=[1, 2, 3, 4])
    with pytest.raises(InputError, match="must be an Answer"):
        vr.segment(rgb, answer="[]")


def test_eval_scores_union_masks_and_matches_boxes_on_per_object_ground_truth(vr, scene, tmp_path):
    from PIL import Image

    from segzero_edge.evaluation import evaluate, open_dataset

    rgb, text = scene
    h, w = rgb.shape[:2]
    Image.fromarray(rgb).save(tmp_path / "scene.png")
    records = []
    for k, boxes in enumerate(([(10, 10, 60, 60), (90, 90, 150, 140)], [(20, 100, 80, 150)])):
        names = []
        for j, (x1, y1, x2, y2) in enumerate(boxes):
            m = np.zeros((h, w), np.uint8)
            m[y1:y2, x1:x2] = 255
            Image.fromarray(m).save(tmp_path / f"m{k}_{j}.png")
            names.append(f"m{k}_{j}.png")
        records.append({"id": f"s{k}", "image": "scene.png", "masks": names, "text": text})
    (tmp_path / "index.json").write_text(json.dumps(records))
    dataset = open_dataset(tmp_path)
    _image, union, objects = next(iter(dataset)).load_objects()
    assert objects.shape == (2, h, w) and np.array_equal(union, objects.any(axis=0))
    report = evaluate(vr, dataset)
    for sample in report.samples:
        assert sample.status == "ok" and 1 <= sample.n_pred_objects <= 3
        assert sample.n_gt_objects == (2 if sample.id == "s0" else 1)
        assert 0 <= sample.n_matched <= min(sample.n_pred_objects, sample.n_gt_objects)
    d = report.detection
    assert (d.n_samples, d.n_gt) == (2, 3) and d.n_pred == sum(s.n_pred_objects for s in report.samples)
    assert report.to_dict()["detection"]["n_gt"] == 3
