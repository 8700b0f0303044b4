"""Tracker fixtures: the world's tiny SAM2 config (224 px) with seeded random weights, exported with its
tracker (validated against the official SAM2VideoPredictor at export), and a variant whose object-score
head says "absent" on every frame (its last bias set to -50), for the loss paths."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the export extra (torch)")
pytest.importorskip("sam2", reason="needs the official sam2 package (make install installs it)")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra: ort)")

WORLD_CONFIG = Path(__file__).resolve().parents[2] / "world" / "assets" / "sam2_tiny.yaml"


def _engine(root: Path, *, absent: bool) -> tuple[Path, Path]:
    import torch

    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.export.tracker_export.export import export_tracker
    from segzero_edge.reference.builders.sam2 import build_sam2_model

    torch.set_num_threads(2)
    model = build_sam2_model(str(WORLD_CONFIG), seed=0)
    if absent:
        with torch.no_grad():
            model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(-50.0)
    ckpt = root / "sam2.pt"
    torch.save({"model": model.state_dict()}, ckpt)
    engine = root / "engine"
    export_sam2(ckpt, engine, Sam2ExportConfig(config=str(WORLD_CONFIG), validation_images=1))
    export_tracker(ckpt, engine, str(WORLD_CONFIG), validation_frames=30)
    return engine, ckpt


@pytest.fixture(scope="session")
def world_engine(tmp_path_factory) -> tuple[Path, Path]:
    """(engine directory with sam2 + tracker, the checkpoint) of the tiny world SAM2, random weights."""
    return _engine(tmp_path_factory.mktemp("tracker"), absent=False)


@pytest.fixture(scope="session")
def absent_engine(tmp_path_factory) -> tuple[Path, Path]:
    """The same with an object-score head that reports no object on every frame."""
    return _engine(tmp_path_factory.mktemp("tracker_absent"), absent=True)


@pytest.fixture(scope="session")
def tracker(world_engine):
    from segzero_edge.tracker.pipeline import TrackerPipeline

    return TrackerPipeline(world_engine[0], device="cpu", threads=2)
