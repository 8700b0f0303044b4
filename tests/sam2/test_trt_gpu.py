"""TensorRT engines of the exported SAM2 graphs, built and run on this GPU.

Skipped (with the reason) where TensorRT or a CUDA GPU is missing, e.g. on the CPU CI machine; on a GPU
machine, `pip install 'segzero-edge[tensorrt]'` and run `make test` to exercise it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from segzero_edge.errors import BackendUnavailableError, InputError
from segzero_edge.manifest import load_manifest
from segzero_edge.sam2.contract import DECODER, ENCODER
from segzero_edge.trt.build import BuildOptions

# Checked at collection, before the session fixtures would export an engine directory for nothing.
pytest.importorskip("tensorrt", reason="TensorRT is not installed (extra `tensorrt`, needs NVIDIA's package index)")
try:
    from segzero_edge.trt.cuda import gpu_info

    GPU = gpu_info()
except BackendUnavailableError as exc:
    pytest.skip(f"no usable CUDA GPU for TensorRT: {exc.message}", allow_module_level=True)

pytestmark = [pytest.mark.gpu, pytest.mark.trt]


@pytest.mark.parametrize("encoder_precision", ["fp32", "fp16-mixed"])
def test_build_and_run_sam2_engines(tmp_path, engine_dir, encoder_precision):
    """Build on this GPU, check vs ONNX Runtime, record, then run through Sam2Pipeline(backend='trt')."""
    from segzero_edge.sam2 import Sam2Pipeline
    from segzero_edge.sam2.host import mask_iou
    from segzero_edge.sam2.trt_check import check_image, check_trt_sam2
    from segzero_edge.trt.build import build_engines
    from segzero_edge.trt.profiles import build_key

    out = shutil.copytree(engine_dir, tmp_path / "engine")
    # Random-weight logits are small (|x| < 1), so FP16 gets a looser mask gate than FP32 here.
    min_iou = 0.99 if encoder_precision == "fp32" else 0.9
    build = build_engines(
        out,
        BuildOptions(precision={ENCODER: encoder_precision}),
        check=lambda m: check_trt_sam2(out, m, min_iou=min_iou),
    )
    assert build.key == build_key(GPU.name, build.tensorrt_version)
    assert build.settings["check"]["mask_iou_min"] >= min_iou
    assert build.settings["graphs"][ENCODER]["precision"] in (encoder_precision, "fp32")
    manifest = load_manifest(out)
    assert manifest.trt_builds[0].key == build.key and (out / build.engines[DECODER]).is_file()
    assert not [p for p in (out / "trt").iterdir() if p.name.startswith(".")]  # no staging folder left

    trt_rt = Sam2Pipeline(out, backend="trt")
    ort_rt = Sam2Pipeline(out, backend="ort", device="cpu")
    assert trt_rt.backend.name == "trt"
    image = check_image(300, 500, seed=3)
    boxes = np.array([[50, 40, 300, 250], [200, 100, 480, 290]], np.float32)
    feats = trt_rt.encode(image)
    a = trt_rt.decode(feats, box=boxes)
    b = ort_rt.decode(ort_rt.encode(image), boxes=boxes)
    assert a.masks.shape == b.masks.shape == (2, 300, 500)
    assert min(mask_iou(x, y) for x, y in zip(a.masks, b.masks)) >= min_iou
    many = trt_rt.decode(feats, box=np.tile(boxes, (10, 1)))  # 20 objects: two calls within the 1..16 profile
    assert many.masks.shape == (20, 300, 500)
    with pytest.raises(InputError, match="TensorRT profile"):
        trt_rt.decode(feats, points=np.zeros((1, 17, 2), np.float32))  # 17 points > the profile's 16
