"""Check freshly built tracker TensorRT engines against the FP32 ONNX graphs on ONNX Runtime (CPU).

Run by ``segzero-edge build`` before it records the engines: a seeded clip (``clips.synthetic_clip``, 16
frames, the target prompted with box + 2 points) tracked by both, frame by frame. Every frame's mask IoU
must reach ``min_iou`` or the build is rejected: TensorRT 10.3 on Orin computes SAM2's mask decoder wrong
at every flag (a k/v-projection MatMul, reported by others), and such an engine must never be recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EngineIncompatibleError
from ..manifest import Manifest
from ..sam2 import Sam2Pipeline
from ..sam2.host import mask_iou
from .clips import synthetic_clip
from .pipeline import TrackerPipeline


def _run(tracker: TrackerPipeline, frames, prompt) -> tuple[list[np.ndarray], np.ndarray]:
    feats = tracker.encode(frames[0])
    step = tracker.prompt_step(feats, **prompt)
    bank = tracker.new_bank(1)
    bank.reset(0, step.maskmem, step.obj_ptr)
    size = (frames[0].shape[1], frames[0].shape[0])
    masks, scores = [tracker.masks(step, size)[0]], [float(step.object_scores[0])]
    for t in range(1, len(frames)):
        step = tracker.track_step(tracker.encode(frames[t]), bank, t)
        bank.add(t, step.maskmem, step.obj_ptr)
        masks.append(tracker.masks(step, size)[0])
        scores.append(float(step.object_scores[0]))
    return masks, np.asarray(scores)


def check_trt_tracker(engine_dir, manifest: Manifest, *, min_iou: float = 0.99, frames: int = 16) -> dict[str, Any]:
    """Numbers comparing the build's tracker (and SAM2 encoder) engines with ONNX Runtime FP32; raises when a
    frame's mask IoU is below ``min_iou``."""
    from .trt_backend import TrtTrackerBackend

    clip = synthetic_clip(frames, seed=0)
    prompt = {"box": [list(clip.box)], "points": [np.asarray(clip.points, np.float32)]}
    ref = TrackerPipeline(engine_dir, manifest=manifest, device="cpu", backend="ort", verify="none")
    sam2_trt = Sam2Pipeline(engine_dir, manifest=manifest, backend="trt", verify="none")
    trt = TrackerPipeline(
        engine_dir, manifest=manifest, sam2=sam2_trt, backend=TrtTrackerBackend(engine_dir, manifest), verify="none"
    )
    ref_masks, ref_scores = _run(ref, clip.frames, prompt)
    trt_masks, trt_scores = _run(trt, clip.frames, prompt)
    ious = [mask_iou(a, b) for a, b in zip(ref_masks, trt_masks)]
    numbers = {
        "frames": frames,
        "mask_iou_min": float(min(ious)),
        "mask_iou_mean": float(np.mean(ious)),
        "mask_iou_per_frame": [round(v, 6) for v in ious],
        "object_score_max_abs_diff": float(np.abs(ref_scores - trt_scores).max()),
        "reference": "onnxruntime CPU fp32",
    }
    if numbers["mask_iou_min"] < min_iou:
        worst = int(np.argmin(ious))
        raise EngineIncompatibleError(
            f"the TensorRT tracker engines change the masks: IoU {numbers['mask_iou_min']:.4f} on frame {worst} "
            f"< {min_iou} vs the FP32 ONNX graphs",
            hint="this TensorRT computes a graph wrong (TensorRT 10.3's mask-decoder bug on Orin is known): "
            "rebuild without the tracker graphs (--graphs) and track on ONNX Runtime, or upgrade TensorRT",
        )
    return numbers
