"""Check freshly built SAM2 TensorRT engines against the FP32 ONNX graphs on ONNX Runtime (CPU).

Run by ``segzero-edge build`` before it records the engines: one synthetic image, Seg-Zero's prompt
(box + 2 points), a 3-object call and a single click, both mask modes. The FP16 encoder must keep the
masks: the minimum mask IoU must reach ``min_iou`` (default 0.99) or the build is rejected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EngineIncompatibleError
from ..manifest import Manifest
from .host import mask_iou
from .pipeline import Sam2Pipeline


def check_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A deterministic ``(H, W, 3)`` uint8 test image: a gradient with a few filled rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], -1)
    for _ in range(5):
        x0, y0 = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        img[y0 : y0 + int(rng.integers(40, height // 3)), x0 : x0 + int(rng.integers(40, width // 3))] = rng.uniform(
            0, 255, 3
        )
    return img.astype(np.uint8)


def check_trt_sam2(engine_dir, manifest: Manifest, *, min_iou: float = 0.99) -> dict[str, Any]:
    """Numbers comparing the manifest's TensorRT build with ONNX Runtime FP32; raises below ``min_iou``."""
    ref = Sam2Pipeline(engine_dir, manifest=manifest, device="cpu", backend="ort")
    trt = Sam2Pipeline(engine_dir, manifest=manifest, backend="trt")
    image = check_image()
    h, w = image.shape[:2]
    f_ref, f_trt = ref.encode(image), trt.encode(image)
    numbers: dict[str, Any] = {
        "feature_max_abs_diff": {k: float(np.abs(f_ref.feeds()[k] - f_trt.feeds()[k]).max()) for k in f_ref.feeds()}
    }
    prompts = [
        dict(box=[0.2 * w, 0.2 * h, 0.6 * w, 0.7 * h], points=[[0.35 * w, 0.4 * h], [0.45 * w, 0.5 * h]]),
        dict(
            box=[
                [0.1 * w, 0.1 * h, 0.4 * w, 0.4 * h],
                [0.5 * w, 0.2 * h, 0.9 * w, 0.6 * h],
                [0.3 * w, 0.5 * h, 0.7 * w, 0.9 * h],
            ],
            points=[[[0.25 * w, 0.25 * h]], [[0.7 * w, 0.4 * h]], [[0.5 * w, 0.7 * h]]],
        ),
        dict(points=[[0.5 * w, 0.5 * h]]),
    ]
    ious, agree = [], []
    for p in prompts:
        for mode in ("best", "single"):
            a, b = ref.decode(f_ref, **p, mask_mode=mode), trt.decode(f_trt, **p, mask_mode=mode)
            ious += [mask_iou(x, y) for x, y in zip(a.masks, b.masks)]
            agree += (a.chosen == b.chosen).tolist()
    numbers.update(
        mask_iou_min=min(ious),
        mask_iou_mean=float(np.mean(ious)),
        mask_choice_agreement=float(np.mean(agree)),
        reference="onnxruntime CPU fp32",
    )
    if numbers["mask_iou_min"] < min_iou:
        raise EngineIncompatibleError(
            f"the TensorRT engines change the masks: min IoU {numbers['mask_iou_min']:.4f} < {min_iou} "
            f"vs the FP32 ONNX graphs (features max |diff| {numbers['feature_max_abs_diff']})",
            hint="rebuild with --encoder-precision fp32 (the engines were not recorded)",
        )
    return numbers
