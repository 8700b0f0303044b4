"""A tiny LENS checkpoint in LENS's published layout, and its engine, once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sam2")
pytest.importorskip("onnxruntime")

#: the reasoner input of the tests' engines (16 image tokens); LENS checkpoints record none
INPUT_SIZE = 112


@pytest.fixture(scope="session")
def lens_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lens")


@pytest.fixture(scope="session")
def lens_checkpoint(lens_root) -> Path:
    """``build_tiny_lens``: model_type qwen2_vl, Q = 8, SAM2 2.0 hiera-t; ``stock.pt`` beside it. Read-only."""
    from segzero_edge.reference.builders.lens import build_tiny_lens

    return build_tiny_lens(lens_root / "checkpoint", stock_sam2=lens_root / "stock.pt", seed=0)


@pytest.fixture(scope="session")
def lens_engine(lens_root, lens_checkpoint) -> Path:
    """The checkpoint exported with an fp32 reasoner and all three context variants, validated on 2 images."""
    from segzero_edge.export.lens_export.export import LensExportConfig, export_lens
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig

    cfg = LensExportConfig(
        reasoner=ReasonerExportConfig(
            weights="fp32", input_size=INPUT_SIZE, validate="quick", validation_tokens=12, threads=1
        ),
        stock_sam2=lens_root / "stock.pt",
        tracker=False,  # hiera-t at 1024 px tracks at about 18 s a frame here; tests/lens/test_lens_track.py tracks
        validation_images=2,
        validation_tokens=12,
    )
    export_lens(lens_checkpoint, lens_root / "engine", cfg)
    return lens_root / "engine"


@pytest.fixture(scope="session")
def lens_reference(lens_checkpoint):
    from segzero_edge.export.lens_export.reference import LensReference

    return LensReference(lens_checkpoint, input_size=INPUT_SIZE)


@pytest.fixture(scope="session")
def lens_segmenter(lens_engine):
    from segzero_edge import Segmenter

    with Segmenter(lens_engine, device="cpu", max_new_tokens=12) as seg:
        yield seg


def seeded_image(seed: int, h: int = 150, w: int = 210):
    import numpy as np

    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8) + rng.integers(0, 256, 3, dtype=np.uint8)
    for _ in range(3):
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y : y + h // 3, x : x + w // 3] = rng.integers(0, 256, 3)
    return img
