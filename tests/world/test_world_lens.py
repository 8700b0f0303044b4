"""The shipped LENS head, assembled into a checkpoint in LENS's layout and exported, reaches its table row.

``benchmarks/results/world_lens.json`` holds every test sample's mask IoU per path (``python -m
segzero_edge.world lens-accuracy``). Here the shipped head (``world/assets/lens_head.safetensors``) on the shipped
reasoner and SAM2 goes through ``build_world_lens_checkpoint`` (the published layout: ``model_type qwen2_vl``,
4.51 names, ``sam.*`` without memory modules), ``export lens`` with the INT4 reasoner (validated against the
torch reference) and ``Segmenter.predict`` over the first test scenes: gIoU must match the recorded row on the
same scenes within a margin, sample by sample for most of them. A regression anywhere on the LENS path (prompt,
the mask pass's positions, the hidden-states output, the context graph, the prompt-embedding decoder, the
single-mask choice, the upsampling) moves the masks of a head that localises, so it fails here.
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
RESULTS = ROOT / "benchmarks" / "results" / "world_lens.json"
ROW = "LENS ONNX INT4"
SAMPLES = 40
MARGIN = 0.05
#: share of the samples whose mask IoU equals the recorded one within 0.02 (float summation order aside,
#: the run is the same)
SAME_SAMPLES = 0.85
#: world clips of the tracking check (30 frames each)
TRACK_CLIPS = 3


@pytest.fixture(scope="module")
def reported() -> dict:
    return json.loads(RESULTS.read_text())


def test_results_belong_to_the_shipped_head(reported):
    from segzero_edge.manifest import sha256_file
    from segzero_edge.world.lens_head import HEAD_FILE

    assert reported["head_sha256"] == sha256_file(HEAD_FILE)
    assert reported["rows"][ROW]["samples"] == 200


@pytest.fixture(scope="module")
def lens_int4_engine(tmp_path_factory) -> Path:
    """The world LENS engine (shipped head, INT4 reasoner, world SAM2's tracker), as lens-accuracy exports it."""
    from segzero_edge.world.lens_accuracy import export_lens_engine
    from segzero_edge.world.lens_head import build_world_lens_checkpoint

    root = tmp_path_factory.mktemp("world_lens")
    ckpt = build_world_lens_checkpoint(root / "checkpoint")
    assert json.loads((ckpt / "config.json").read_text())["model_type"] == "qwen2_vl"
    engine, _ = export_lens_engine(root / "engine", ckpt, "int4")
    return engine


def test_lens_int4_engine_reaches_the_reported_giou(reported, lens_int4_engine, tmp_path):
    from segzero_edge import Segmenter
    from segzero_edge.evaluation import evaluate
    from segzero_edge.manifest import load_manifest
    from segzero_edge.world.dataset import write_split
    from segzero_edge.world.lens_accuracy import MAX_NEW_TOKENS

    engine = lens_int4_engine
    v = load_manifest(engine).validation["lens"]
    assert v["image_encoder"]["stock"] is True and v["mask_decoder_iou_min"] >= 0.999
    split = write_split("test", tmp_path / "data", count=SAMPLES).root
    with Segmenter(engine, device="cpu", max_new_tokens=MAX_NEW_TOKENS) as seg:
        report = evaluate(seg, split, limit=SAMPLES)
    got = np.array([s.iou for s in report.samples])
    want = np.array(reported["rows"][ROW]["per_sample_iou"][:SAMPLES])
    assert abs(got.mean() - want.mean()) <= MARGIN, (got.mean(), want.mean())
    assert np.mean(np.abs(got - want) <= 0.02) >= SAME_SAMPLES
    assert want.mean() > 0.1  # the head localises: a broken path cannot pass by matching zeros


def test_tracks_from_the_lens_mask_reach_the_reported_j(lens_int4_engine):
    """The first clips of ``world_tracking_lens.json``'s "reason once + track" row, re-run: tracks that start
    from the LENS mask (``track-accuracy --family lens``)."""
    from segzero_edge.manifest import load_manifest
    from segzero_edge.world.lens_accuracy import MAX_NEW_TOKENS
    from segzero_edge.world.track_eval import evaluate_tracking

    m = load_manifest(lens_int4_engine)
    assert m.validation["tracker"]["mask_start"]["mask_iou_min"] >= 0.999
    table = json.loads((ROOT / "benchmarks" / "results" / "world_tracking_lens.json").read_text())
    way = "reason once + track"
    want = next(r for r in table["rows"] if r["way"] == way)["per_clip"][:TRACK_CLIPS]
    seeds = [c["seed"] for c in want]
    got = evaluate_tracking(
        lens_int4_engine, seeds, frames=table["frames"], threads=2, ways=(way,), max_new_tokens=MAX_NEW_TOKENS
    )["rows"][0]["per_clip"]
    j_got, j_want = np.array([c["J"] for c in got]), np.array([c["J"] for c in want])
    assert np.abs(j_got - j_want).max() <= 0.05, (j_got, j_want)
    assert j_want.mean() > 0.1  # the tracks follow something: an empty-mask path cannot pass by matching zeros
