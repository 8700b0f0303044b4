"""Export-time validation: the exported graphs and the runtime against the official SAM2 pipeline.

For each synthetic image (``samples.py``), every prompt kind and both mask modes:

1. encoder: ONNX vs official on the *same* (official) preprocessed image: max |diff| per output;
2. decoder: ONNX vs official prompt encoder + ``MaskDecoder.predict_masks`` on the same features and
   prompts: max |diff| of all four mask logits, IoU scores and object score logits;
3. end to end (graphs): ONNX features + ONNX decoder + the runtime's host code (mask choice,
   upsampling, threshold) vs ``SAM2ImagePredictor`` semantics with the same choice rule
   (``"best"``: Seg-Zero's highest-score multimask mask; ``"single"``: ``multimask_output=False``);
4. end to end (runtime): the same through ``Sam2Pipeline`` with its numpy/PIL preprocessing.

Random-weight models give arbitrary masks, so the report also states how many reference masks are
non-trivial (between 0.5% and 99.5% foreground): IoU over all-empty or all-full masks proves little.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import numpy as np

from segzero_edge.errors import ExportValidationError
from segzero_edge.reference.torch_sam2 import OfficialPredictor, official_preprocess, segzero_choice
from segzero_edge.sam2 import Sam2Pipeline
from segzero_edge.sam2.host import build_prompts, mask_iou, preprocess

from .config import Sam2ExportConfig
from .samples import IMAGE_SIZES, PromptCase, prompt_cases, synthetic_image

log = logging.getLogger(__name__)


def _maxdiff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def _absmax(a) -> float:
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


class _Report:
    def __init__(self) -> None:
        self.diff: dict[str, float] = defaultdict(float)
        self.ref: dict[str, float] = defaultdict(float)
        self.iou: dict[str, list[float]] = defaultdict(list)
        self.agree: list[bool] = []
        self.fg: list[float] = []

    def add_diff(self, name: str, got, ref) -> None:
        self.diff[name] = max(self.diff[name], _maxdiff(got, ref))
        self.ref[name] = max(self.ref[name], _absmax(ref))


def _official_masks(oracle: OfficialPredictor, case: PromptCase, mode: str, mask_input):
    """Reference masks ``[N, H, W]``, scores ``[N]`` and token index ``[N]`` for one case and mode."""
    masks, scores, _ = oracle.predict(
        case.points, case.labels, case.boxes, mask_input, multimask_output=(mode == "best")
    )
    n = case.num_objects
    masks, scores = masks.reshape(n, -1, *masks.shape[-2:]), np.asarray(scores).reshape(n, -1)
    if mode == "best":
        return segzero_choice(masks, scores)
    return masks[:, 0], scores[:, 0], None


def _previous_mask(oracle: OfficialPredictor, case: PromptCase) -> np.ndarray:
    _, scores, low_res = oracle.predict(case.points, case.labels, case.boxes, None, multimask_output=True)
    return np.asarray(low_res)[int(np.argmax(scores))][None]  # [1, r, r], clamped as the predictor returns it


def validate_sam2(model, runtime: Sam2Pipeline, cfg: Sam2ExportConfig, *, progress: bool = False) -> dict[str, Any]:
    """Run the comparisons of the module docstring; returns the numbers for ``manifest.validation``."""
    import onnxruntime
    import torch
    from tqdm import tqdm

    s = runtime.settings
    oracle = OfficialPredictor(model, mask_threshold=s.mask_threshold)
    rep = _Report()
    sizes = IMAGE_SIZES[: cfg.validation_images]
    kinds: list[str] = []
    for i, (h, w) in enumerate(tqdm(sizes, desc="validating sam2", unit="image", disable=not progress)):
        rgb = synthetic_image(h, w, seed=cfg.seed + i)
        x_official = official_preprocess(rgb, s.image_size)
        ref = oracle.set_preprocessed(x_official, (h, w))
        graph_feats = runtime.encode_preprocessed(x_official.numpy(), (w, h))
        for name, got in graph_feats.feeds().items():
            rep.add_diff(f"encoder.{name}", got, ref[name].numpy())
        x_runtime = preprocess(rgb, s.image_size, s.pixel_mean, s.pixel_std)
        rep.add_diff("runtime.preprocess", x_runtime, x_official.numpy())
        runtime_feats = runtime.encode_preprocessed(x_runtime, (w, h))

        for case in prompt_cases(h, w, seed=cfg.seed + i):
            if case.kind not in kinds:
                kinds.append(case.kind)
            mask_input = _previous_mask(oracle, case) if case.use_previous_mask else None
            prompts = dict(box=case.boxes, points=case.points, labels=case.labels, mask_input=mask_input)
            ref_low, ref_iou, ref_obj = oracle.predict_all_tokens(case.points, case.labels, case.boxes, mask_input)
            n, batches = build_prompts(
                **prompts,
                image_wh=(w, h),
                image_size=s.image_size,
                low_res_size=s.low_res_size,
                max_objects=s.max_objects,
            )
            low, iou, obj = runtime.decode_raw(graph_feats, batches, n)
            rep.add_diff("decoder.low_res_masks", low, ref_low)
            rep.add_diff("decoder.iou_scores", iou, ref_iou)
            rep.add_diff("decoder.object_score_logits", obj, ref_obj)
            for mode in ("best", "single"):
                ref_masks, _, ref_idx = _official_masks(oracle, case, mode, mask_input)
                graph = runtime.decode(graph_feats, **prompts, mask_mode=mode)
                full = runtime.decode(runtime_feats, **prompts, mask_mode=mode)
                for k in range(n):
                    rep.iou[f"graphs.{case.kind}"].append(mask_iou(graph.masks[k], ref_masks[k]))
                    rep.iou[f"runtime.{case.kind}"].append(mask_iou(full.masks[k], ref_masks[k]))
                    rep.fg.append(float(ref_masks[k].mean()))
                    if ref_idx is not None:
                        rep.agree.append(bool(graph.chosen[k] == ref_idx[k]))
    return _numbers(rep, kinds, sizes, cfg, torch.__version__, onnxruntime.__version__)


def _numbers(rep: _Report, kinds, sizes, cfg: Sam2ExportConfig, torch_version: str, ort_version: str) -> dict:
    graphs = [v for k, vs in rep.iou.items() if k.startswith("graphs.") for v in vs]
    runtime = [v for k, vs in rep.iou.items() if k.startswith("runtime.") for v in vs]
    fg = np.array(rep.fg)
    out: dict[str, Any] = {
        "precision": "fp32",
        "reference": "official sam2 modules (SAM2ImagePredictor semantics), torch " + torch_version,
        "onnxruntime": f"{ort_version} CPUExecutionProvider",
        "images": [list(hw) for hw in sizes],
        "prompt_kinds": list(kinds),
        "mask_modes": ["best", "single"],
        "num_masks_compared": len(graphs),
        "max_abs_diff": {k: rep.diff[k] for k in sorted(rep.diff) if not k.startswith("runtime.")},
        "reference_max_abs": {k: rep.ref[k] for k in sorted(rep.ref) if not k.startswith("runtime.")},
        "mask_iou_min": min(graphs),
        "mask_iou_mean": float(np.mean(graphs)),
        "mask_iou_min_per_kind": {k.split(".", 1)[1]: min(v) for k, v in rep.iou.items() if k.startswith("graphs.")},
        "mask_choice_agreement": float(np.mean(rep.agree)) if rep.agree else 1.0,
        "runtime_preprocess_max_abs_diff": rep.diff["runtime.preprocess"],
        "runtime_mask_iou_min": min(runtime),
        "runtime_mask_iou_mean": float(np.mean(runtime)),
        "reference_foreground_fraction": {
            "min": float(fg.min()),
            "max": float(fg.max()),
            "nontrivial": float(np.mean((fg > 0.005) & (fg < 0.995))),
        },
        "gates": {
            "encoder_rtol": cfg.encoder_rtol,
            "decoder_rtol": cfg.decoder_rtol,
            "score_atol": cfg.score_atol,
            "min_mask_iou": cfg.min_mask_iou,
            "min_runtime_iou": cfg.min_runtime_iou,
        },
    }
    return out


def check_gates(numbers: dict[str, Any], cfg: Sam2ExportConfig) -> None:
    """Raise ``ExportValidationError`` with the failing numbers if any gate of ``cfg`` fails."""
    failed: dict[str, Any] = {}
    for name, diff in numbers["max_abs_diff"].items():
        scale = max(1.0, numbers["reference_max_abs"][name])
        if name == "decoder.iou_scores":
            limit = cfg.score_atol
        else:
            limit = (cfg.encoder_rtol if name.startswith("encoder.") else cfg.decoder_rtol) * scale
        if not diff <= limit:
            failed[f"{name}.max_abs_diff"] = f"{diff:.3g} > {limit:.3g}"
    if not numbers["mask_iou_min"] >= cfg.min_mask_iou:
        failed["mask_iou_min"] = f"{numbers['mask_iou_min']:.5f} < {cfg.min_mask_iou}"
    if not numbers["runtime_mask_iou_min"] >= cfg.min_runtime_iou:
        failed["runtime_mask_iou_min"] = f"{numbers['runtime_mask_iou_min']:.5f} < {cfg.min_runtime_iou}"
    if failed:
        raise ExportValidationError(
            "the exported SAM2 graphs do not match the official model; nothing was written",
            numbers=failed,
            hint="a bug in the exporter or in onnxruntime for this model; the full numbers are in the log",
        )
    log.info(
        "sam2 validation passed: mask IoU min %.5f, runtime %.5f",
        numbers["mask_iou_min"],
        numbers["runtime_mask_iou_min"],
    )
