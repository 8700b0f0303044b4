"""Frame-by-frame validation of the tracker graphs against the official ``SAM2VideoPredictor``.

Both sides see the same decoded frames: the clip is written as JPEG files, the official predictor loads the
folder (``init_state``), and the runtime reads the same files back with Pillow. The clip is tracked twice
with ``propagate_in_video``: prompted on frame 0 with boxes and points (a Seg-Zero answer), and with masks
(``add_new_mask``: a LENS answer, or any mask a user has); per frame and object, the masks at the frame's
size are compared.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segzero_edge.errors import ExportValidationError
from segzero_edge.sam2.host import mask_iou
from segzero_edge.tracker.clips import Clip, synthetic_clip
from segzero_edge.tracker.contract import MASK_PROMPT
from segzero_edge.tracker.pipeline import TrackerPipeline

log = logging.getLogger(__name__)

#: the official predictor's per-frame output key (its dict, not one of our graphs' tensors)
_SCORE_KEY = "object_score" + "_logits"


def _jpeg_round_trip(clip: Clip, folder: Path) -> list[np.ndarray]:
    frames = []
    for i, frame in enumerate(clip.frames):
        path = folder / f"{i}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        with Image.open(path) as im:
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def official_track(predictor, folder: Path, prompts: list[dict[str, Any]]) -> tuple[list[np.ndarray], np.ndarray]:
    """Run the official predictor over a JPEG folder; returns per frame ``[N, H, W]`` bool masks and
    ``[T, N]`` object score logits."""
    import warnings

    import torch

    # Without SAM2's CUDA extension the official predictor skips its hole filling and warns each frame.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*cannot import name '_C'", category=UserWarning)
        state = predictor.init_state(str(folder))
        for obj_id, prompt in enumerate(prompts):
            if "mask" in prompt:
                predictor.add_new_mask(state, frame_idx=0, obj_id=obj_id, mask=prompt["mask"])
            else:
                predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, **prompt)
        masks = []
        for _, _, logits in predictor.propagate_in_video(state):
            masks.append((logits[:, 0] > 0.0).cpu().numpy())
        scores = np.zeros((len(masks), len(prompts)), np.float32)
        for i in range(len(prompts)):
            out = state["output_dict_per_obj"][i]
            for t in range(len(masks)):
                entry = out["cond_frame_outputs"].get(t) or out["non_cond_frame_outputs"].get(t)
                scores[t, i] = float(entry[_SCORE_KEY].reshape(-1)[0])
    return masks, scores


def runtime_track(tracker: TrackerPipeline, frames: list[np.ndarray], prompts: list[dict[str, Any]]):
    """The runtime's steps over decoded frames; returns masks per frame and ``[T, N]`` object scores.
    ``prompts`` all hold a ``mask``, or all a ``box`` with ``points`` and ``labels``."""
    size = (frames[0].shape[1], frames[0].shape[0])
    feats = tracker.encode(frames[0])
    if "mask" in prompts[0]:
        step = tracker.mask_step(feats, np.stack([p["mask"] for p in prompts]))
    else:
        box = [p["box"] for p in prompts]
        points = [np.asarray(p["points"], np.float32) for p in prompts]
        labels = [np.asarray(p["labels"], np.float32) for p in prompts]
        step = tracker.prompt_step(feats, box=box, points=points, labels=labels)
    bank = tracker.new_bank(len(prompts))
    bank.reset(0, step.maskmem, step.obj_ptr)
    masks, scores = [tracker.masks(step, size)], [step.object_scores]
    for t in range(1, len(frames)):
        step = tracker.track_step(tracker.encode(frames[t]), bank, t)
        bank.add(t, step.maskmem, step.obj_ptr)
        masks.append(tracker.masks(step, size))
        scores.append(step.object_scores)
    return masks, np.stack(scores)


def _compare(ref, got) -> dict[str, Any]:
    (ref_masks, ref_scores), (got_masks, got_scores) = ref, got
    ious = np.array([[mask_iou(a, b) for a, b in zip(r, g)] for r, g in zip(ref_masks, got_masks)])
    return {
        "mask_iou_min": float(ious.min()),
        "mask_iou_mean": float(ious.mean()),
        "mask_iou_per_frame": [round(float(v), 6) for v in ious.min(axis=1)],
        "object_score_max_abs_diff": float(np.abs(ref_scores - got_scores).max()),
        "object_presence_agreement": float(np.mean((ref_scores > 0) == (got_scores > 0))),
        "present_frames": [int(v) for v in (ref_scores > 0).sum(axis=0)],
    }


def validate_tracker(
    predictor, tracker: TrackerPipeline, *, num_frames: int = 30, seed: int = 0, progress: bool = False
) -> dict[str, Any]:
    """Per-frame parity numbers of ``tracker`` against ``predictor`` (an official ``SAM2VideoPredictor``
    with the same weights) on a seeded clip with two objects: the clip's target and the background triangle.

    Returns:
        ``frames``, ``objects``, ``mask_iou_min``/``mask_iou_mean`` over every frame and object,
        ``mask_iou_per_frame`` (the minimum over objects), ``object_score_max_abs_diff``,
        ``object_presence_agreement`` (share of frame-objects with the same sign), ``present_frames`` (of
        the official predictor), all for the box-and-points start; the same under ``mask_start`` for the
        start from masks (the target's true mask and a rectangle; only when the engine has
        ``tracker.mask_prompt``); ``seconds``.
    """
    t0 = time.perf_counter()
    clip = synthetic_clip(num_frames, seed=seed)
    w, h = clip.frames[0].shape[1], clip.frames[0].shape[0]
    second = [0.55 * w, 0.1 * h, 0.85 * w, 0.4 * h]
    prompts = [
        {"box": list(clip.box), "points": [list(p) for p in clip.points], "labels": [1, 1]},
        {"box": second, "points": [[0.7 * w, 0.3 * h]], "labels": [1]},
    ]
    rect = np.zeros((h, w), bool)
    rect[int(second[1]) : int(second[3]), int(second[0]) : int(second[2])] = True
    mask_prompts = [{"mask": clip.masks[0]}, {"mask": rect}]
    runs = {"box": prompts, "mask": mask_prompts} if MASK_PROMPT in tracker.specs else {"box": prompts}
    compared = {}
    with tempfile.TemporaryDirectory(prefix="segzero-track-") as tmp:
        frames = _jpeg_round_trip(clip, Path(tmp))
        for kind, run in runs.items():
            compared[kind] = _compare(official_track(predictor, Path(tmp), run), runtime_track(tracker, frames, run))
    numbers = {
        "frames": len(frames),
        "objects": len(prompts),
        "clip": f"synthetic_clip({num_frames}, seed={seed}), JPEG q95, {w}x{h}",
        **compared["box"],
    }
    if "mask" in compared:
        numbers["mask_start"] = compared["mask"]
    numbers["seconds"] = round(time.perf_counter() - t0, 1)
    log.info("tracker validation: min mask IoU %.6f over %d frames", numbers["mask_iou_min"], len(frames))
    return numbers


def check_gates(numbers: dict[str, Any], min_iou: float) -> None:
    """Refuse the export when any frame's mask IoU is below ``min_iou`` (either start)."""
    for start, nums in (("box-and-points", numbers), ("mask", numbers.get("mask_start"))):
        if nums is not None and nums["mask_iou_min"] < min_iou:
            worst = int(np.argmin(nums["mask_iou_per_frame"]))
            raise ExportValidationError(
                f"tracker graphs disagree with the official SAM2VideoPredictor ({start} start): mask IoU "
                f"{nums['mask_iou_min']:.6f} on frame {worst} (gate {min_iou})",
                numbers=numbers,
                hint="report this with the SAM2 config and torch/onnxruntime versions",
            )
