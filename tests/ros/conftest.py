"""ROS fixtures: the ``make demo`` world engine (trained reasoner, SAM2 and its tracker) and a short clip of
the demo scene in motion, stamped as a camera would stamp it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CLIP_FRAMES = 10


@pytest.fixture(scope="session")
def ros_engine(tmp_path_factory) -> Path:
    pytest.importorskip("torch", reason="the export needs torch")
    pytest.importorskip("sam2", reason="the SAM2 export needs the official sam2 package")
    pytest.importorskip("onnxruntime", reason="the runtime needs onnxruntime")
    from segzero_edge.world.demo import export_world_engine

    out, _ = export_world_engine(tmp_path_factory.mktemp("ros") / "engine_world_int4", "int4")
    return out


@pytest.fixture(scope="session")
def demo_frames():
    """(frames ``[T]`` of (448, 448, 3) uint8, the demo instruction)."""
    from segzero_edge.world import ASSETS
    from segzero_edge.world.clips import demo_clip

    text = json.loads((ASSETS / "demo_scene.json").read_text())["text"]
    return demo_clip(CLIP_FRAMES).frames, text
