"""Fixtures for the core tests."""

import pytest

from segzero_edge import manifest as mf
from segzero_edge.sam2 import contract as sam2_contract


def make_toy_engine_dir(tmp_path):
    """An engine directory with two fake SAM2 graph files and a valid manifest: (path, manifest)."""
    d = tmp_path / "engine"
    (d / "sam2").mkdir(parents=True)
    (d / "sam2" / "image_encoder.onnx").write_bytes(b"encoder-bytes" * 100)
    (d / "sam2" / "mask_decoder.onnx").write_bytes(b"decoder-bytes" * 10)
    enc = mf.GraphSpec(
        file="sam2/image_encoder.onnx",
        inputs=(mf.TensorSpec("image", "float32", (1, 3, 1024, 1024)),),
        outputs=(mf.TensorSpec(sam2_contract.IMAGE_EMBED, "float32", (1, 256, 64, 64)),),
    )
    dec = mf.GraphSpec(
        file="sam2/mask_decoder.onnx",
        inputs=(mf.TensorSpec(sam2_contract.POINT_COORDS, "float32", ("num_objects", "num_points", 2)),),
        outputs=(mf.TensorSpec(sam2_contract.IOU_SCORES, "float32", ("num_objects", 4)),),
        dynamic_dims={"num_objects": (1, 1, 16), "num_points": (1, 4, 8)},
    )
    m = mf.new_manifest().replace_component(
        "sam2",
        settings={"config": "configs/sam2.1/sam2.1_hiera_t.yaml", "image_size": 1024},
        graphs={sam2_contract.ENCODER: enc, sam2_contract.DECODER: dec},
        files=[mf.file_entry(d, "sam2/image_encoder.onnx"), mf.file_entry(d, "sam2/mask_decoder.onnx")],
        sources=[mf.SourceCheckpoint("sam2", "tiny.pt", "0" * 64, {"config": "sam2.1_hiera_t"})],
        validation={"mask_iou_min": 0.9995},
    )
    mf.save_manifest(m, d)
    return d, m


@pytest.fixture
def toy_engine_dir(tmp_path):
    return make_toy_engine_dir(tmp_path)[0]
