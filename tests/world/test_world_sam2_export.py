"""The shipped tiny SAM2 exports with `segzero-edge export sam2 --config FILE`, passes export-time
validation, and the engine reaches the benchmarked test IoU on the ONNX Runtime runtime."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs the export extra (torch)")
pytest.importorskip("sam2", reason="needs the official sam2 package (make install installs it)")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra: ort)")

from segzero_edge.manifest import load_manifest, sha256_file
from segzero_edge.sam2 import contract as sam2_contract
from segzero_edge.world import ASSETS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ASSETS / "sam2_tiny.yaml"
CHECKPOINT = ASSETS / "sam2_tiny.pt"
RESULTS = ROOT / "benchmarks" / "results" / "world_sam2.json"
SAMPLES = 12


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    import torch

    from segzero_edge.export.sam2_export import cli

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("world") / "engine"
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = ["--checkpoint", str(CHECKPOINT), "--config", str(CONFIG), "--out", str(out), "--validation-images", "1"]
    assert cli.run(parser.parse_args(args)) == 0  # raises ExportValidationError when a gate fails
    return out


@pytest.mark.slow
def test_export_records_the_config_file_and_its_size(engine):
    m = load_manifest(engine)
    settings = m.component("sam2")
    assert settings["image_size"] == 224 and settings["low_res_size"] == 56
    assert m.graph(sam2_contract.ENCODER).inputs[0].shape == (1, 3, 224, 224)
    assert m.graph(sam2_contract.DECODER).inputs[0].shape == (1, 96, 14, 14)
    (src,) = [s for s in m.sources if s.component == "sam2"]
    assert src.sha256 == sha256_file(CHECKPOINT)
    assert src.details["config_sha256"] == sha256_file(CONFIG)
    assert Path(src.details["config_file"]) == CONFIG.resolve()
    v = m.validation["sam2"]
    assert v["mask_iou_min"] >= 0.999 and v["runtime_mask_iou_min"] >= 0.99


@pytest.mark.slow
def test_engine_reaches_the_reported_test_iou(engine):
    from segzero_edge.sam2 import Sam2Pipeline
    from segzero_edge.world.sam2_data import SceneStore, gt_prompt

    reported = json.loads(RESULTS.read_text())
    assert reported["split"] == "test" and reported["checkpoint_sha256"] == sha256_file(CHECKPOINT)
    store = SceneStore.from_split("test", SAMPLES)
    runtime = Sam2Pipeline(engine, device="cpu", backend="ort", threads=2)
    ious = []
    for i in range(len(store)):
        gt = store.target_mask(i)
        p = gt_prompt(gt)
        mask = runtime.segment(store.images[i], box=p.box, points=p.points[None]).masks[0]
        ious.append(np.logical_and(mask, gt).sum() / np.logical_or(mask, gt).sum())
    same = reported["per_sample_iou"]["onnx"][:SAMPLES]
    assert np.mean(ious) >= np.mean(same) - 0.02, (np.mean(ious), np.mean(same))
    assert np.mean(ious) >= reported["onnx"]["mean_iou"] - 0.15  # a handful of scenes vs all 200
