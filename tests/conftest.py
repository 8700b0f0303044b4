"""Shared fixtures. Heavy packages are imported inside the fixtures, so collection stays fast."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL checkpoint directory (HF format), built once per test session.

    ``build_tiny_qwen25vl(size="tiny", seed=0)``: 2 text layers, 2 vision blocks, the offline tokenizer,
    input size 112 (16 image tokens). Shared by every test: treat it as read-only (copy it with
    ``shutil.copytree`` before changing anything, or build your own into ``tmp_path``).
    """
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny_qwen") / "checkpoint", "tiny", seed=0)
