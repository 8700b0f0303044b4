"""Training data: mask geometry (tight box, points inside the mask), prepare-data for the three source
layouts with bad records reported and skipped, and the Seg-Zero layout loader."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

pytest.importorskip("datasets")
pytest.importorskip("scipy")

from PIL import Image

from segzero_edge import decode_answer
from segzero_edge.errors import TrainingError
from segzero_edge.prompt import seg_zero_user_text
from segzero_edge.training.data import (
    load_seg_zero_dataset,
    mask_box,
    mask_points,
    record_geometry,
    solution_to_answer,
)
from segzero_edge.training.prepare import prepare_dataset, rle_to_mask
from segzero_edge.training.rewards import parse_solution, seg_zero_reward

from .conftest import TINY_INPUT_SIZE, write_index_source


def _shapes(h=70, w=90):
    yy, xx = np.mgrid[:h, :w]
    ell = ((yy - 35) / 20) ** 2 + ((xx - 40) / 30) ** 2 <= 1
    rect = np.zeros((h, w), bool)
    rect[10:50, 20:61] = True
    ell_l = rect.copy()
    ell_l[10:20, 20:80] = True  # an L shape
    one = np.zeros((h, w), bool)
    one[33, 44] = True
    line = np.zeros((h, w), bool)
    line[5:65, 7] = True
    two = rect.copy()
    two[55:65, 70:85] = True  # two blobs
    return {"ellipse": ell, "rect": rect, "L": ell_l, "one_pixel": one, "thin_line": line, "two_blobs": two}


@pytest.mark.parametrize("name", list(_shapes()))
def test_box_is_tight_and_points_lie_in_the_mask(name):
    mask = _shapes()[name]
    x1, y1, x2, y2 = mask_box(mask)
    assert mask[:, x1].any() and mask[:, x2].any() and mask[y1].any() and mask[y2].any()
    assert not mask[:, :x1].any() and not mask[:, x2 + 1 :].any()
    assert not mask[:y1].any() and not mask[y2 + 1 :].any()
    (px1, py1), (px2, py2) = mask_points(mask)
    assert mask[py1, px1] and mask[py2, px2]


def test_point_one_is_the_centre_of_the_largest_inscribed_circle():
    from scipy.ndimage import distance_transform_edt

    mask = _shapes()["L"]
    (px, py), (qx, qy) = mask_points(mask)
    edt = distance_transform_edt(mask)
    assert edt[py, px] == edt.max()
    # point 2 lies beyond the median distance from point 1 (the far part of the L)
    ys, xs = np.nonzero(mask)
    assert np.hypot(qx - px, qy - py) > np.median(np.hypot(xs - px, ys - py))


def test_geometry_at_model_size_is_exact_and_scaled_otherwise():
    mask = np.zeros((112, 112), bool)
    mask[20:60, 30:91] = True
    box, points, snapped = record_geometry(mask, 112)
    assert box == (30, 20, 90, 59) and not snapped
    big = np.zeros((224, 448), bool)  # 2x / 4x the model size
    big[40:120, 120:364] = True
    box, points, _ = record_geometry(big, 112)
    assert box == (int(120 / 4 + 0.5), int(40 / 2 + 0.5), int(363 / 4 + 0.5), int(119 / 2 + 0.5))
    small = np.asarray(Image.fromarray(big.astype(np.uint8) * 255).resize((112, 112), Image.Resampling.NEAREST))
    for x, y in points:
        assert small[y, x]


def test_prepare_index_layout_and_loader(tmp_path, hf_cache):
    src = write_index_source(tmp_path / "src", n=6)
    records = json.loads((src / "index.json").read_text())
    records[1]["expressions"] = ["left one.", "the one on the left"]  # one row per expression
    del records[1]["problem"]
    records[2]["mask"] = "missing.png"  # unreadable mask
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(src / "small_mask.png")
    records[3]["mask"] = "small_mask.png"  # mask of another size
    Image.fromarray(np.zeros((60, 60), np.uint8)).save(src / "empty.png")
    Image.fromarray(np.zeros((60, 60, 3), np.uint8)).save(src / "img_empty.png")
    records.append({"id": "empty", "image": "img_empty.png", "mask": "empty.png", "problem": "nothing"})
    records.append({"id": "notext", "image": "img0.jpg", "mask": "mask0.png"})
    (src / "index.json").write_text(json.dumps(records))

    report = prepare_dataset("index", src, tmp_path / "out", input_size=TINY_INPUT_SIZE)
    assert report.kept == 5  # rec0, rec1 x2, rec4, rec5
    assert dict(report.skipped) == {
        "unreadable mask (FileNotFoundError)": 1,
        "mask size differs from image size": 1,
        "empty mask": 1,
        "no expression text": 1,
    }
    assert json.loads((tmp_path / "out" / "prepare_report.json").read_text())["kept"] == 5

    ds, load_report = load_seg_zero_dataset(str(tmp_path / "out"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache)
    assert load_report.kept == 5 and not load_report.skipped
    assert ds.column_names[:6] == ["id", "problem", "solution", "image", "img_height", "img_width"]
    assert sorted(ds["id"]) == ["rec0", "rec1_0", "rec1_1", "rec4", "rec5"]
    for row in ds:
        src_mask = np.asarray(Image.open(src / records[int(row["id"][3])]["mask"])) > 0
        assert (row["img_height"], row["img_width"]) == src_mask.shape
        assert row["image"].size == (TINY_INPUT_SIZE, TINY_INPUT_SIZE)
        assert row["prompt"] == [{"role": "user", "content": seg_zero_user_text(row["problem"])}]
        box, points = parse_solution(row["solution"])
        small = (
            np.asarray(
                Image.fromarray(src_mask.astype(np.uint8) * 255).resize(
                    (TINY_INPUT_SIZE, TINY_INPUT_SIZE), Image.Resampling.NEAREST
                )
            )
            > 0
        )
        for x, y in points:
            assert small[y, x], "point outside the (resized) mask"
        sys_, sxs = np.nonzero(small)  # tight up to the rounding of the rescale
        assert abs(box[0] - sxs.min()) <= 1 and abs(box[2] - sxs.max()) <= 1
        assert abs(box[1] - sys_.min()) <= 1 and abs(box[3] - sys_.max()) <= 1
        # the solution parses with our decoder (as an answer) and scores 5 with the official rewards
        answer = solution_to_answer(row["solution"])
        assert seg_zero_reward(answer, row["solution"]) == 5
        size = (TINY_INPUT_SIZE, TINY_INPUT_SIZE)
        decoded = decode_answer(answer, image_size=size, model_size=size)
        assert decoded.ok and decoded.box == tuple(float(v) for v in box)
        assert decoded.points == tuple((float(x), float(y)) for x, y in points)


def test_loader_reports_bad_rows_and_save_to_disk(tmp_path, tiny_seg_data, hf_cache):
    import datasets

    ds = datasets.load_dataset(
        "parquet",
        data_files=sorted(str(p) for p in tiny_seg_data.rglob("*.parquet")),
        split="train",
        cache_dir=hf_cache,
    )
    sols = list(ds["solution"])
    sols[0] = "<box>(1, 2),(3,4)</box>"  # not the regex form
    probs = list(ds["problem"])
    probs[1] = "  "
    ds = ds.remove_columns(["solution", "problem"]).add_column("solution", sols).add_column("problem", probs)
    ds.save_to_disk(str(tmp_path / "disk"))
    loaded, report = load_seg_zero_dataset(str(tmp_path / "disk"), input_size=TINY_INPUT_SIZE)
    assert report.total == 8 and report.kept == 6 and len(loaded) == 6
    assert report.skipped == {
        "solution not in <box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points> form": 1,
        "empty problem": 1,
    }
    with pytest.raises(TrainingError, match="row rec"):
        load_seg_zero_dataset(str(tmp_path / "disk"), input_size=TINY_INPUT_SIZE, skip_bad_rows=False)
    with pytest.raises(TrainingError, match="no usable row") as err:
        load_seg_zero_dataset(str(tmp_path / "disk"), input_size=840)  # images are 112x112
    assert "prepare-data" in str(err.value)
    with pytest.raises(TrainingError, match="missing column"):
        ds.remove_columns(["solution"]).save_to_disk(str(tmp_path / "nosol"))
        load_seg_zero_dataset(str(tmp_path / "nosol"), input_size=TINY_INPUT_SIZE)
    loaded, _ = load_seg_zero_dataset(str(tiny_seg_data), input_size=TINY_INPUT_SIZE, max_rows=3, cache_dir=hf_cache)
    assert len(loaded) == 3


def _rle_runs(mask: np.ndarray) -> list[int]:
    """Run lengths of the column-major mask, starting with a run of zeros (COCO's uncompressed RLE)."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    counts, prev, run = [], 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return counts


def _rle_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE (pycocotools' string algorithm), written here to check the decoder."""
    counts, out = _rle_runs(mask), []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((x == 0 and not ch & 0x10) or (x == -1 and ch & 0x10))
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return {"size": list(mask.shape), "counts": "".join(out)}


def test_rle_decoding():
    for mask in _shapes().values():
        assert np.array_equal(rle_to_mask(_rle_encode(mask)), mask)
        assert np.array_equal(rle_to_mask({"size": list(mask.shape), "counts": _rle_runs(mask)}), mask)


def test_prepare_refcoco_layout(tmp_path, hf_cache):
    root = tmp_path / "refcocog"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8)).save(root / "images" / "COCO_1.jpg")
    ell = _shapes()["ellipse"]
    ell80 = np.zeros((80, 100), bool)
    ell80[:70, :90] = ell
    instances = {
        "images": [{"id": 1, "file_name": "COCO_1.jpg", "height": 80, "width": 100}],
        "annotations": [
            {"id": 10, "image_id": 1, "segmentation": [[10, 10, 60, 10, 60, 50, 10, 50]]},  # polygon
            {"id": 11, "image_id": 1, "segmentation": _rle_encode(ell80)},  # compressed RLE
            {"id": 12, "image_id": 1, "segmentation": [[1, 1, 2, 2]]},  # degenerate polygon: empty mask
        ],
    }
    (root / "instances.json").write_text(json.dumps(instances))
    refs = [
        {"ref_id": 1, "ann_id": 10, "image_id": 1, "split": "train", "sentences": [{"sent": "the square"}]},
        {
            "ref_id": 2,
            "ann_id": 11,
            "image_id": 1,
            "split": "train",
            "sentences": [{"sent": "the oval"}, {"sent": "round thing"}],
        },
        {"ref_id": 3, "ann_id": 10, "image_id": 1, "split": "val", "sentences": [{"sent": "val only"}]},
        {"ref_id": 4, "ann_id": 12, "image_id": 1, "split": "train", "sentences": [{"sent": "nothing"}]},
        {"ref_id": 5, "ann_id": 99, "image_id": 1, "split": "train", "sentences": [{"sent": "lost"}]},
    ]
    with open(root / "refs(umd).p", "wb") as f:
        pickle.dump(refs, f)
    report = prepare_dataset("refcoco", root, tmp_path / "out", input_size=TINY_INPUT_SIZE, split_by="umd")
    assert report.kept == 3 and report.skipped == {
        "empty mask": 1,
        "record without image, mask or annotation": 1,
    }
    ds, _ = load_seg_zero_dataset(str(tmp_path / "out"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache)
    rows = {r["id"]: r for r in ds}
    assert set(rows) == {"ref_1", "ref_2_0", "ref_2_1"}
    box, _ = parse_solution(rows["ref_1"]["solution"])
    # the polygon covers x 10..60, y 10..50 of a 100x80 image -> scaled to 112x112
    assert box == [int(10 * 1.12 + 0.5), int(10 * 1.4 + 0.5), int(60 * 1.12 + 0.5), int(50 * 1.4 + 0.5)]
    box2, _ = parse_solution(rows["ref_2_0"]["solution"])
    ex = mask_box(ell80)
    assert box2 == [
        int(ex[0] * 1.12 + 0.5),
        int(ex[1] * 1.4 + 0.5),
        int(ex[2] * 1.12 + 0.5),
        int(ex[3] * 1.4 + 0.5),
    ]


def test_prepare_reasonseg_layout_ignores_ignore_regions(tmp_path, hf_cache):
    root = tmp_path / "reasonseg"
    root.mkdir()
    Image.fromarray(np.full((100, 120, 3), 128, np.uint8)).save(root / "a.jpg")
    (root / "a.json").write_text(
        json.dumps(
            {
                "text": ["what holds the coffee?", "the thing to drink from"],
                "is_sentence": True,
                "shapes": [
                    {
                        "label": "target",
                        "points": [[20, 20], [80, 20], [80, 80], [20, 80]],
                        "shape_type": "polygon",
                    },
                    {
                        "label": "ignore",
                        "points": [[60, 20], [80, 20], [80, 80], [60, 80]],
                        "shape_type": "polygon",
                    },
                    {"label": "flag", "points": [[0, 0], [119, 0], [119, 99]], "shape_type": "polygon"},
                ],
            }
        )
    )
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(root / "b.jpg")  # no annotation file
    report = prepare_dataset("reasonseg", root, tmp_path / "out", input_size=TINY_INPUT_SIZE)
    assert report.kept == 2 and report.skipped == {"record without image, mask or annotation": 1}
    ds, _ = load_seg_zero_dataset(str(tmp_path / "out"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache)
    assert sorted(ds["problem"]) == ["the thing to drink from", "what holds the coffee?"]
    box, _ = parse_solution(ds[0]["solution"])
    # target x 20..80 minus the ignore strip x 60..80 -> x 20..59 (the polygon edge x=60 belongs to "ignore")
    assert box == [
        int(20 * 112 / 120 + 0.5),
        int(20 * 1.12 + 0.5),
        int(59 * 112 / 120 + 0.5),
        int(80 * 1.12 + 0.5),
    ]


def test_prepare_data_cli(tmp_path, capsys, tiny_qwen_dir):
    from segzero_edge.cli import main

    src = write_index_source(tmp_path / "src", n=2)
    assert main(["train", "prepare-data", "index", str(src), str(tmp_path / "out"), "--input-size", "56"]) == 0
    assert "2/2 rows kept" in capsys.readouterr().out
    assert (
        main(
            [
                "train",
                "prepare-data",
                "index",
                str(src),
                str(tmp_path / "o3"),
                "--checkpoint",
                str(tiny_qwen_dir),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        load_seg_zero_dataset(str(tmp_path / "o3"), input_size=TINY_INPUT_SIZE)[1].kept == 2
    )  # 112 from the checkpoint
    assert main(["train", "prepare-data", "index", str(tmp_path / "nope"), str(tmp_path / "o2")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_prepare_multi_object_layout_and_loader(tmp_path, hf_cache):
    """--family vision_reasoner: one row per text, the solution a JSON list of the objects' boxes with one
    point each, read back by the loader with the VisionReasoner prompt; it scores 7 with the official rewards."""
    from segzero_edge.prompt import vision_reasoner_user_text
    from segzero_edge.training.data import parse_objects_solution
    from segzero_edge.training.rewards import vision_reasoner_reward_components

    src = write_index_source(tmp_path / "src", n=2)
    records = json.loads((src / "index.json").read_text())
    h, w = np.asarray(Image.open(src / records[0]["mask"])).shape
    m = np.zeros((h, w), np.uint8)
    m[2:12, w - 14 : w - 2] = 255  # a corner the first object leaves free
    Image.fromarray(m).save(src / "second.png")
    records[0]["masks"] = [records[0].pop("mask"), "second.png"]  # two objects
    (src / "index.json").write_text(json.dumps(records))

    with pytest.raises(Exception, match="unknown model family"):
        prepare_dataset("index", src, tmp_path / "x", input_size=TINY_INPUT_SIZE, family="coprs")
    with pytest.raises(Exception, match="no GRPO training data layout"):
        prepare_dataset("index", src, tmp_path / "x", input_size=TINY_INPUT_SIZE, family="lens")
    seg_zero = prepare_dataset("index", src, tmp_path / "sz", input_size=TINY_INPUT_SIZE)
    assert seg_zero.kept == 1 and "several object masks" in next(iter(seg_zero.skipped))

    report = prepare_dataset("index", src, tmp_path / "out", input_size=TINY_INPUT_SIZE, family="vision_reasoner")
    assert report.kept == 2
    ds, _ = load_seg_zero_dataset(
        str(tmp_path / "out"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache, family="vision_reasoner"
    )
    counts = {}
    for row in ds:
        objects = parse_objects_solution(row["solution"])
        counts[row["id"]] = len(objects)
        assert row["prompt"] == [{"role": "user", "content": vision_reasoner_user_text(row["problem"])}]
        for box, (x, y) in objects:
            assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
        answer = f"<think>the shapes</think><answer>{row['solution']}</answer>"
        assert sum(vision_reasoner_reward_components(answer, row["solution"]).values()) == 7.0
    assert counts == {"rec0": 2, "rec1": 1}
    # a Seg-Zero loader refuses the multi-object rows, and the other way round
    with pytest.raises(Exception, match="no usable row"):
        load_seg_zero_dataset(str(tmp_path / "out"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache)
    with pytest.raises(Exception, match="no usable row"):
        load_seg_zero_dataset(
            str(tmp_path / "sz"), input_size=TINY_INPUT_SIZE, cache_dir=hf_cache, family="vision_reasoner"
        )
