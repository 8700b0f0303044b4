"""The shipped world models through export and the runtime reach the accuracy the table reports.

``benchmarks/results/world_accuracy.json`` holds, per deployment path, every test sample's mask IoU
(``python -m segzero_edge.world accuracy``). Here the shipped checkpoints (world/assets/) go through the same
export as ``make demo`` (``world.demo.export_world_engine``: INT4 reasoner, SAM2, both validated) and
``Segmenter`` on ONNX Runtime, over the first test scenes; gIoU must match the reported INT4 + constraint
row on the same scenes, within a margin, and every answer must parse. A regression anywhere (prompt,
image preprocessing, graphs, quantization, answer decoding, coordinate scaling, SAM2 prompts, mask
choice) drops the gIoU of a model that localises, so it fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the export needs torch")
pytest.importorskip("sam2", reason="the SAM2 export needs the official sam2 package")
pytest.importorskip("onnxruntime", reason="the runtime needs onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "world_accuracy.json"

from segzero_edge.world import ASSETS  # noqa: E402

ROW = "INT4 + constraint"
SAMPLES = 100
#: gIoU of these samples may differ from the recorded run by this much: the recorded run used the same
#: models and greedy decoding, so only float summation order (thread count, CPU kernels) differs.
MARGIN = 0.05
#: Share of the samples whose mask IoU must equal the recorded one (within 0.02): of all, and of the hits
#: (recorded IoU >= 0.3). The other rows of the table reach 0.40-0.73 and 0-0.68 against this one on these
#: samples (INT4 without the constraint, which changes few answers: 0.98 and 1.00).
SAME_SAMPLES, SAME_HITS = 0.85, 0.7


@pytest.fixture(scope="module")
def reported() -> dict:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def engine(world_engine) -> Path:
    return world_engine


def test_results_belong_to_the_shipped_checkpoints(reported):
    """The table was measured on the checkpoints in the repository (they are committed together)."""
    from segzero_edge.manifest import sha256_file
    from segzero_edge.world.demo import WORLD_REASONER, WORLD_SAM2

    assert reported["split"] == "test"
    assert reported["reasoner_weights_sha256"] == sha256_file(WORLD_REASONER / "model.safetensors")
    assert reported["sam2_sha256"] == sha256_file(WORLD_SAM2)
    row = reported["rows"][ROW]
    assert row["samples"] >= 100 and row["parse_rate"] == 1.0
    assert len(row["per_sample"]["iou"]) == row["samples"]


@pytest.mark.slow
def test_shipped_models_reach_the_reported_giou(engine, reported, tmp_path):
    from segzero_edge import Segmenter
    from segzero_edge.evaluation import evaluate
    from segzero_edge.world.dataset import write_split

    split = write_split("test", tmp_path / "data", count=SAMPLES)
    row = reported["rows"][ROW]
    with Segmenter(engine, device="cpu", threads=2, max_new_tokens=reported["max_new_tokens"], **row["options"]) as seg:
        report = evaluate(seg, split.root)
    ious = [s.iou for s in report.samples]
    ids = [s.id for s in report.samples]
    assert ids == row["per_sample"]["id"][:SAMPLES]
    expected = float(np.mean(row["per_sample"]["iou"][:SAMPLES]))
    print(
        f"\nINT4 + constraint, {SAMPLES} test scenes: gIoU {np.mean(ious):.3f} (reported {expected:.3f}, "
        f"all 200: {row['giou']:.3f})"
    )
    assert report.n_parse_failures == 0 and report.n_errors == 0
    assert abs(float(np.mean(ious)) - expected) <= MARGIN, (np.mean(ious), expected)
    # sample by sample: a pipeline regression (coordinates, preprocessing, prompts) moves nearly every mask,
    # float summation order only the odd greedy answer
    recorded = np.asarray(row["per_sample"]["iou"][:SAMPLES])
    same = np.isclose(ious, recorded, atol=0.02)
    hits = recorded >= 0.3
    assert hits.sum() >= 5  # the table row has hits to compare
    assert same.mean() >= SAME_SAMPLES and same[hits].mean() >= SAME_HITS, (same.mean(), same[hits].mean())


@pytest.mark.slow
def test_demo_segments_the_bundled_scene(engine, tmp_path, capsys):
    from segzero_edge.cli import main

    exported = (engine / "manifest.json").stat().st_mtime_ns
    assert main(["demo", "--work-dir", str(engine.parent), "--out", str(tmp_path)]) == 0
    assert (engine / "manifest.json").stat().st_mtime_ns == exported  # the cached export was reused
    record = json.loads((tmp_path / "demo.segzero.json").read_text())
    out = capsys.readouterr().out
    assert record["engine_dir"] == str(engine) and record["weights"].startswith("trained world models")
    assert record["found"] and record["mask_pixels"] > 0, record
    assert (tmp_path / "demo.overlay.png").stat().st_size > 0
    assert "instruction" in out and "box" in out


@pytest.mark.slow
def test_demo_masks_the_shape_the_instruction_means(engine):
    """`make demo`'s scene and instruction, as the demo runs them: the mask covers the ground-truth target.

    The bundled scene is regenerated from the seed its JSON names (pixel-identical), so the target's true
    mask is known; the demo's mask must overlap it at IoU >= 0.5 (a box on another shape gives ~0)."""
    from PIL import Image

    from segzero_edge import Segmenter
    from segzero_edge.world.scenes import generate_samples

    meta = json.loads((ASSETS / "demo_scene.json").read_text())
    rgb = np.asarray(Image.open(ASSETS / "demo_scene.png").convert("RGB"))
    scene, query = next(
        (sc, q) for sc, q in generate_samples(2024, 8, 448) if q.text == meta["text"] and np.array_equal(sc.image, rgb)
    )
    assert scene.objects[query.target].describe() == meta["target"]
    truth = scene.masks[query.target]
    with Segmenter(engine, device="cpu", max_new_tokens=320) as seg:  # the demo's settings (world/demo.py)
        res = seg.predict(rgb, meta["text"])
    assert res.found, res.error
    iou = np.logical_and(res.mask, truth).sum() / np.logical_or(res.mask, truth).sum()
    assert iou >= 0.5, (iou, res.box, res.raw_text)


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "changed"), [("WORLD_BLOCK_SIZE", 32), ("WORLD_INT8_LAYERS", ())])
def test_a_cached_engine_of_another_precision_is_exported_again(engine, tmp_path, monkeypatch, setting, changed):
    """The cache key of `make demo`'s engine is the whole recorded precision: block size and INT8 layers."""
    import shutil

    from segzero_edge.world import demo

    cached = shutil.copytree(engine, tmp_path / engine.name)  # the module's engine stays as it is
    assert demo.export_world_engine(cached, "int4")[1] == 0.0  # same sources and precision: reused
    assert getattr(demo, setting) != changed
    monkeypatch.setattr(demo, setting, changed)
    out, seconds = demo.export_world_engine(cached, "int4")
    assert seconds > 0
    precision = json.loads((out / "reasoner" / "reasoner.json").read_text())["precision"]
    assert precision["body_quantization"]["block_size"] == demo.WORLD_BLOCK_SIZE
    assert tuple(precision.get("int8_layers", ())) == demo.WORLD_INT8_LAYERS
    assert demo.export_world_engine(cached, "int4")[1] == 0.0  # and the new one is reused in turn
