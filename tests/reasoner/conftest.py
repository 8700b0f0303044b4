"""Fixtures of the reasoner tests: tiny engine directories exported once per session.

Each export is the real thing (``export_reasoner`` on the tiny random Qwen2.5-VL checkpoint, with its
quick validation against transformers); tests then load them with the torch-free ``Reasoner``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _export(tmp_path_factory, checkpoint: Path, weights: str, **kw) -> Path:
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner

    out = tmp_path_factory.mktemp(f"engine_{weights}") / "engine"
    export_reasoner(checkpoint, out, ReasonerExportConfig(weights=weights, validate="quick", threads=1, **kw))
    return out


@pytest.fixture(scope="session")
def engine_fp32(tmp_path_factory, tiny_qwen_dir) -> Path:
    """The tiny checkpoint exported in fp32 (read-only)."""
    return _export(tmp_path_factory, tiny_qwen_dir, "fp32")


@pytest.fixture(scope="session")
def engine_int4(tmp_path_factory, tiny_qwen_dir) -> Path:
    """The tiny checkpoint exported with INT4 weights, block 32, INT8 LM head, fp32 compute (accuracy_level 0:
    weight-only numerics, so tokens equal transformers carrying the dequantized weights) (read-only)."""
    return _export(tmp_path_factory, tiny_qwen_dir, "int4", block_size=32, accuracy_level=0)


@pytest.fixture(scope="session")
def engine_int8(tmp_path_factory, tiny_qwen_dir) -> Path:
    """The tiny checkpoint exported with INT8 weights, block 32, INT8 LM head, accuracy_level 0 (read-only)."""
    return _export(tmp_path_factory, tiny_qwen_dir, "int8", block_size=32, accuracy_level=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_qwen_dir):
    """transformers' fp32 model of the tiny checkpoint (shared; do not modify)."""
    from segzero_edge.reference.qwen import load_qwen_model

    return load_qwen_model(tiny_qwen_dir, "float32")
