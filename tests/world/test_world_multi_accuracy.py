"""The shipped multi-object world reasoner through export and the runtime reaches the table's numbers.

``benchmarks/results/world_multi.json`` holds, per path, every multi-object test sample's IoU and object
count (``python -m segzero_edge.world multi-accuracy``). Here the shipped checkpoint (world/assets/reasoner_multi)
goes through the demo's export (``world.demo.export_multi_engine``: the ``make demo`` engine with its reasoner
replaced, INT4) and ``Segmenter`` on ONNX Runtime over the first test instructions: gIoU and the answers'
object counts must match the INT4 + constraint row, every answer must parse, and the demo's multi-object
instruction must find the shapes it means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the export needs torch")
pytest.importorskip("sam2", reason="the SAM2 export needs the official sam2 package")
pytest.importorskip("onnxruntime", reason="the runtime needs onnxruntime")
pytest.importorskip("scipy", reason="box matching needs scipy")

from segzero_edge.world import ASSETS

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "world_multi.json"
ROW = "ONNX INT4 + constraint"
SAMPLES = 60
MARGIN = 0.05
SAME_SAMPLES = 0.85


@pytest.fixture(scope="module")
def reported() -> dict:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def engine(world_engine) -> Path:
    from segzero_edge.world.demo import export_multi_engine

    out, _ = export_multi_engine(world_engine, world_engine.parent / "engine_world_multi_int4", "int4")
    return out


def test_results_belong_to_the_shipped_checkpoint(reported):
    from segzero_edge.manifest import sha256_file
    from segzero_edge.prompt import read_checkpoint_meta

    assert reported["reasoner_weights_sha256"] == sha256_file(ASSETS / "reasoner_multi" / "model.safetensors")
    assert read_checkpoint_meta(ASSETS / "reasoner_multi")["family"] == "vision_reasoner"
    row = reported["rows"][ROW]
    assert row["samples"] == 200 and row["parse_rate"] == 1.0 and row["split"] == "multi_test"


@pytest.mark.slow
def test_shipped_multi_reasoner_reaches_the_reported_numbers(engine, reported, tmp_path):
    from segzero_edge import Segmenter
    from segzero_edge.evaluation import evaluate
    from segzero_edge.world.multi import write_multi_split

    root = write_multi_split("multi_test", tmp_path / "data", count=SAMPLES)
    row = reported["rows"][ROW]
    settings = dict(max_new_tokens=reported["max_new_tokens"], max_objects=reported["max_objects"], **row["options"])
    with Segmenter(engine, device="cpu", threads=2, **settings) as seg:
        report = evaluate(seg, root)
    ious = np.array([s.iou for s in report.samples])
    assert [s.id for s in report.samples] == row["per_sample"]["id"][:SAMPLES]
    expected = float(np.mean(row["per_sample"]["iou"][:SAMPLES]))
    print(f"\n{ROW}, {SAMPLES} multi-object test instructions: gIoU {ious.mean():.3f} (reported {expected:.3f})")
    assert report.n_parse_failures == 0 and report.n_errors == 0
    assert abs(float(ious.mean()) - expected) <= MARGIN
    same = np.isclose(ious, row["per_sample"]["iou"][:SAMPLES], atol=0.02)
    counts = np.array([s.n_pred_objects for s in report.samples]) == row["per_sample"]["objects"][:SAMPLES]
    assert same.mean() >= SAME_SAMPLES and counts.mean() >= SAME_SAMPLES, (same.mean(), counts.mean())
    assert report.detection is not None and report.detection.n_gt == sum(
        len(r["targets"]) for r in json.loads((root / "index.json").read_text())
    )


@pytest.mark.slow
def test_the_demo_instruction_finds_the_shapes_it_means(engine):
    """The demo scene (regenerated from its seed) and its multi-object instruction, as the demo runs them."""
    from PIL import Image

    from segzero_edge import Segmenter
    from segzero_edge.world.multi import MAX_NEW_TOKENS, MAX_OBJECTS, generate_multi_queries
    from segzero_edge.world.scenes import generate_samples

    meta = json.loads((ASSETS / "demo_scene.json").read_text())
    rgb = np.asarray(Image.open(ASSETS / "demo_scene.png").convert("RGB"))
    scene = next(sc for sc, q in generate_samples(2024, 8, 448) if q.text == meta["text"])
    query = generate_multi_queries(scene, np.random.default_rng(2024), 448)[0]
    assert query.text == meta["multi_text"]
    assert [scene.objects[k].describe() for k in query.targets] == meta["multi_targets"]
    truth = np.logical_or.reduce([scene.masks[k] for k in query.targets])
    with Segmenter(engine, device="cpu", max_new_tokens=MAX_NEW_TOKENS, max_objects=MAX_OBJECTS) as seg:
        res = seg.predict(rgb, meta["multi_text"])
    assert res.found, res.error
    iou = np.logical_and(res.mask, truth).sum() / np.logical_or(res.mask, truth).sum()
    assert len(res.objects) == len(query.targets) and iou >= 0.5, (len(res.objects), iou, res.raw_text)
