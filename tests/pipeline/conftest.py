"""One complete engine directory (tiny random reasoner, fp32 + random SAM2 hiera-t) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sam2")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def full_engine_dir(tmp_path_factory, tiny_qwen_dir) -> Path:
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.reference.builders import build_sam2_checkpoint

    root = tmp_path_factory.mktemp("pipeline")
    engine = root / "engine"
    export_reasoner(tiny_qwen_dir, engine, ReasonerExportConfig(weights="fp32", validate="quick", threads=1))
    ckpt = build_sam2_checkpoint(root / "sam2.pt", "sam2.1_hiera_t", seed=0)
    export_sam2(ckpt, engine, Sam2ExportConfig(config="sam2.1_hiera_t", validation_images=1))
    return engine


@pytest.fixture(scope="session")
def segmenter(full_engine_dir):
    from segzero_edge import Segmenter

    with Segmenter(full_engine_dir, device="cpu", max_new_tokens=60) as seg:
        yield seg


@pytest.fixture(scope="session")
def scene():
    from segzero_edge.world.scenes import generate_samples

    sc, q = generate_samples(11, 1, 160)[0]
    return sc.image, q.text
