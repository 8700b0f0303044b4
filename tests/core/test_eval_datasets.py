"""``evaluate`` on tiny hand-made datasets in every layout ``segzero-edge eval`` reads, with hand-computed scores.

The predictor is a table of known answers (text -> mask / no answer / exception), so every gIoU and cIoU below
is worked out by hand from the rectangles; the readers, the loop and the metrics are the real code.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from segzero_edge.errors import DatasetError
from segzero_edge.evaluation import detect_layout, evaluate, open_dataset
from segzero_edge.types import Answer, Segmentation

H, W = 40, 50


def _rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


GT_A = _rect(10, 30, 10, 30)  # 400 px; as a polygon: x, y 10..29 inclusive
PRED_A = _rect(10, 30, 20, 40)  # I = 200, U = 600 with GT_A
GT_B = _rect(0, 10, 0, 50)  # 500 px
EMPTY = np.zeros((H, W), bool)
SQUARE_POLY = [10, 10, 29, 10, 29, 29, 10, 29]


class KnownAnswers:
    """``predict`` from a table: a mask (found), None (answer not decodable), or an exception to raise."""

    def __init__(self, answers):
        self.answers, self.seen = answers, []

    def predict(self, image, text):
        self.seen.append(text)
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        ans = self.answers[text]
        if isinstance(ans, Exception):
            raise ans
        if ans is None:
            return Segmentation(mask=np.zeros((H, W), bool), found=False, error="no answer")
        decoded = Answer(ok=True, box=(0.0, 0.0, 1.0, 1.0))
        if not ans.any():  # a decoded answer whose mask came out empty
            return Segmentation(mask=ans, found=False, error="empty mask", box=decoded.box, answer=decoded)
        return Segmentation(mask=ans, found=True, score=0.9, box=decoded.box, answer=decoded)


def _image(path):
    Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(path)


def _png(mask, path):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def test_index_layout_scores_misses_both_empty_and_skips(tmp_path):
    root = tmp_path / "world"
    root.mkdir()
    records = []
    for rid, mask, text in (
        ("a", GT_A, "the square"),
        ("b", GT_B, "the strip"),
        ("c", EMPTY, "nothing"),
        ("e", GT_A, "boom"),
    ):
        _image(root / f"{rid}.png")
        _png(mask, root / f"{rid}_mask.png")
        records.append({"id": rid, "image": f"{rid}.png", "mask": f"{rid}_mask.png", "text": text})
    records.insert(2, {"id": "d", "image": "a.png", "text": "no mask"})  # unusable record: skipped
    records.append({"id": "f", "image": "a.png", "mask": "missing.png", "text": "the square"})  # unreadable
    (root / "index.json").write_text(json.dumps(records))
    ds = open_dataset(root)
    assert ds.layout == "index" and len(ds) == 6
    seg = KnownAnswers({"the square": PRED_A, "the strip": None, "nothing": EMPTY, "boom": RuntimeError("x")})
    seen = []
    report = evaluate(seg, ds, on_sample=seen.append)
    status = {r.id: r.status for r in report.samples}
    assert status == {"a": "ok", "b": "parse_failure", "d": "skipped", "c": "ok", "e": "error", "f": "skipped"}
    assert [r.id for r in seen] == ["a", "b", "d", "c", "e", "f"]
    s = report.scores
    # a: 200/600; b: miss 0/500; c: both empty -> 1; e: raised -> miss 0/400
    assert s.giou == pytest.approx((1 / 3 + 0 + 1 + 0) / 4)
    assert s.ciou == pytest.approx(200 / (600 + 500 + 400))
    assert (s.n_samples, s.n_both_empty, s.n_failed) == (4, 1, 2)
    assert (report.n_parse_failures, report.n_errors, report.n_skipped) == (1, 1, 2)
    assert report.parse_failure_rate == 0.25
    official = evaluate(seg, ds, drop_both_empty=True).scores
    assert official.giou == pytest.approx((1 / 3 + 0 + 0) / 3) and official.n_scored == 3
    a = report.samples[0]
    assert (a.intersection, a.union, a.gt_pixels, a.pred_pixels, a.image_size) == (200, 600, 400, 400, (W, H))
    summary = report.to_dict()
    assert summary["skipped_reasons"] == {"record without image, mask or annotation": 1, "unreadable image or mask": 1}
    json.dumps(summary)
    json.dumps([r.to_dict() for r in report.samples])
    limited = evaluate(seg, ds, limit=2)
    assert [r.id for r in limited.samples] == ["a", "b"]


def _parquet_rows(rows, path, bboxes=None):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import io

    cols = {"image": [], "text": [], "mask": [], "image_id": [], "ann_id": [], "img_height": [], "img_width": []}
    for image_id, ann_id, text, mask in rows:
        buf = io.BytesIO()
        Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(buf, format="PNG")
        cols["image"].append({"bytes": buf.getvalue(), "path": None})
        cols["text"].append(text)
        cols["mask"].append(mask.tolist())
        cols["image_id"].append(image_id)
        cols["ann_id"].append(ann_id)
        cols["img_height"].append(H)
        cols["img_width"].append(W)
    if bboxes is not None:
        cols["bbox"] = bboxes
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)


class BoxAnswers:
    """``predict`` returning multi-object results: per text a list of (mask, prompt box)."""

    def __init__(self, answers):
        self.answers = answers

    def predict(self, image, text):
        from segzero_edge.types import ObjectMask

        objs = tuple(
            ObjectMask(mask=m, box=None, score=0.9, object_score=1.0, lost=False, prompt_box=b)
            for m, b in self.answers[text]
        )
        union = np.logical_or.reduce([o.mask for o in objs])
        return Segmentation(mask=union, found=True, box=objs[0].prompt_box, objects=objs, answer=Answer(ok=True))


def test_vision_reasoner_bbox_column_gives_the_box_hit_rate(tmp_path):
    """VisionReasoner's sets add a ``bbox`` column: a sample is a box hit when one of the answer's boxes
    has IoU > 0.5 with it (its evaluation's "bbox AP")."""
    path = tmp_path / "vr" / "test-00000-of-00001.parquet"
    _parquet_rows(
        [("i1", 0, "two cups", GT_A), ("i2", 0, "one plate", GT_B)], path, bboxes=[[10, 10, 30, 30], [0, 0, 50, 10]]
    )
    samples = list(open_dataset(path))
    assert [s.gt_box for s in samples] == [(10.0, 10.0, 30.0, 30.0), (0.0, 0.0, 50.0, 10.0)]
    seg = BoxAnswers(
        {
            "two cups": [(PRED_A, (40, 0, 50, 5)), (GT_A, (11, 10, 30, 30))],  # the second box hits
            "one plate": [(GT_B, (0, 0, 20, 10))],  # IoU 0.4: no hit
        }
    )
    report = evaluate(seg, samples)
    assert [r.box_hit for r in report.samples] == [1.0, 0.0] and report.box_hit_rate == 0.5
    assert report.samples[0].n_pred_objects == 2 and report.samples[0].n_gt_objects is None
    assert report.detection is None and report.to_dict()["box_hit_rate"] == 0.5


def test_parquet_layout_as_seg_zero_publishes_it(tmp_path):
    root = tmp_path / "ReasonSeg_test"
    _parquet_rows(
        [("img1", 0, "the square", GT_A), ("img2", 3, "the strip", GT_B), ("img3", 1, "nothing", EMPTY)],
        root / "data" / "test-00000-of-00001.parquet",
    )
    _parquet_rows([("v", 0, "val only", GT_A)], root / "data" / "val-00000-of-00001.parquet")
    assert detect_layout(root) == "parquet"
    with pytest.raises(DatasetError, match="splits"):
        open_dataset(root)
    ds = open_dataset(root, split="test")
    assert len(ds) == 3
    seg = KnownAnswers({"the square": PRED_A, "the strip": None, "nothing": EMPTY})
    report = evaluate(seg, ds)
    assert [r.id for r in report.samples] == ["img1_0", "img2_3", "img3_1"]
    assert report.scores.giou == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert report.scores.ciou == pytest.approx(200 / 1100)
    dropped = evaluate(seg, ds, drop_both_empty=True).scores
    assert dropped.giou == pytest.approx((1 / 3 + 0) / 2) and dropped.ciou == pytest.approx(200 / 1100)
    single = open_dataset(root / "data" / "val-00000-of-00001.parquet")
    assert [s.text for s in single] == ["val only"]
    by_path = evaluate(KnownAnswers({"val only": GT_A}), root / "data" / "val-00000-of-00001.parquet")
    assert by_path.scores.giou == 1.0 and by_path.dataset["layout"] == "parquet"


def test_hf_disk_layout(tmp_path):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "mask": datasets.Sequence(datasets.Sequence(datasets.Value("bool"))),
            "image_id": datasets.Value("string"),
            "ann_id": datasets.Value("int64"),
        }
    )
    img = Image.fromarray(np.full((H, W, 3), 100, np.uint8))
    ds = datasets.Dataset.from_dict(
        {
            "image": [img, img],
            "text": ["the square", "the strip"],
            "mask": [GT_A.tolist(), GT_B.tolist()],
            "image_id": ["p", "q"],
            "ann_id": [1, 2],
        },
        features=feats,
    )
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "disk"))
    eds = open_dataset(tmp_path / "disk")
    assert eds.layout == "hf-disk" and len(eds) == 2
    report = evaluate(KnownAnswers({"the square": PRED_A, "the strip": GT_B}), eds)
    assert report.scores.giou == pytest.approx((1 / 3 + 1) / 2)
    assert report.scores.ciou == pytest.approx((200 + 500) / (600 + 500))


def _rle_counts(mask):
    flat = mask.T.reshape(-1)  # column-major, runs start with zeros
    counts, value, run = [], False, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


def test_refcoco_layout_one_sample_per_sentence(tmp_path):
    root = tmp_path / "refcocog"
    (root / "images").mkdir(parents=True)
    _image(root / "images" / "COCO_1.jpg")
    instances = {
        "images": [{"id": 1, "file_name": "COCO_1.jpg", "height": H, "width": W}],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [SQUARE_POLY]},
            {"id": 11, "image_id": 1, "segmentation": {"size": [H, W], "counts": _rle_counts(GT_B)}},
        ],
    }
    (root / "instances.json").write_text(json.dumps(instances))
    refs = [
        {"ref_id": 1, "ann_id": 10, "image_id": 1, "split": "val", "sentences": [{"sent": "the square"}]},
        {
            "ref_id": 2,
            "ann_id": 11,
            "image_id": 1,
            "split": "val",
            "sentences": [{"sent": "top strip"}, {"sent": "upper band"}],
        },
        {"ref_id": 3, "ann_id": 10, "image_id": 1, "split": "train", "sentences": [{"sent": "train only"}]},
    ]
    with open(root / "refs(umd).p", "wb") as f:
        pickle.dump(refs, f)
    ds = open_dataset(root)
    assert ds.layout == "refcoco" and len(ds) == 3
    report = evaluate(KnownAnswers({"the square": PRED_A, "top strip": GT_B, "upper band": None}), ds)
    assert [r.id for r in report.samples] == ["ref_1", "ref_2_0", "ref_2_1"]
    assert report.samples[0].gt_pixels == 400  # the polygon's boundary pixels belong to it
    assert report.scores.giou == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert report.scores.ciou == pytest.approx((200 + 500) / (600 + 500 + 500))
    assert [s.text for s in open_dataset(root, split="train")] == ["train only"]


def test_reasonseg_layout_first_query_and_ignore_counts_as_target(tmp_path):
    root = tmp_path / "reasonseg_val"
    root.mkdir()
    _image(root / "a.jpg")
    (root / "a.json").write_text(
        json.dumps(
            {
                "text": ["what holds the coffee?", "a second query the official conversion does not use"],
                "shapes": [
                    {"label": "target", "points": [[10, 10], [29, 10], [29, 29], [10, 29]]},
                    {"label": "ignore", "points": [[30, 10], [39, 10], [39, 29], [30, 29]]},
                    {"label": "flag", "points": [[0, 0], [49, 0], [49, 39]]},
                ],
            }
        )
    )
    _image(root / "b.jpg")  # no annotation: skipped
    ds = open_dataset(root)
    assert ds.layout == "reasonseg" and len(ds) == 2
    report = evaluate(KnownAnswers({"what holds the coffee?": PRED_A}), ds)
    a, b = report.samples
    # ground truth = target x 10..29 + ignore x 30..39 (rows 10..29) = 600 px; PRED_A (x 20..39) lies inside it
    assert (a.status, a.gt_pixels, a.intersection, a.union) == ("ok", 600, 400, 600)
    assert b.status == "skipped" and report.scores.n_samples == 1
    assert report.scores.giou == pytest.approx(2 / 3)


def test_unknown_layout_and_missing_folder(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="unknown dataset layout"):
        open_dataset(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        open_dataset(tmp_path / "nope")


def test_a_bbox_column_of_boxes_gives_per_object_detection(tmp_path):
    """VisionReasoner's detection sets list one ``bbox`` per object: the answer's boxes are matched to them."""
    path = tmp_path / "vr_det" / "test-00000-of-00001.parquet"
    _parquet_rows([("i1", 0, "two cups", GT_A)], path, bboxes=[[[10, 10, 30, 30], [40, 0, 50, 5]]])
    (sample,) = open_dataset(path)
    assert sample.gt_box is None and sample.gt_boxes == ((10.0, 10.0, 30.0, 30.0), (40.0, 0.0, 50.0, 5.0))
    seg = BoxAnswers({"two cups": [(PRED_A, (0, 30, 5, 40)), (GT_A, (11, 10, 30, 30))]})
    report = evaluate(seg, [sample])
    assert (report.samples[0].n_gt_objects, report.samples[0].n_matched) == (2, 1)
    assert (report.detection.precision, report.detection.recall) == (0.5, 0.5)
