"""End-to-end validation of a staged LENS engine against the torch reference (``reference.py``).

On ``validation_images`` seeded images, each with a question:

1. the reference runs the whole request (greedy generation to EOS, mask pass, context module, SAM2);
2. **mask pass**: the engine's reasoner (``ReasonerPipeline.query_hidden``) on the reference's own tokens:
   max |diff| / max |reference| of the query hidden states (gate ``hidden_rtol`` for an fp32 reasoner;
   reported for int8/int4, whose quantization the reasoner's own validation isolates);
3. **context**: every context variant on the reference's hidden states: the prompt token's relative error
   (gate ``context_rtol`` for fp32), and the mask it gives;
4. **mask decoder**: the engine's SAM2 encoder + LENS decoder on the reference's prompt token: mask IoU (gate
   ``min_mask_iou``: it isolates the SAM2 graphs whatever the reasoner's precision);
5. **end to end**: ``Segmenter.predict`` (its own generation, fp32 context): mask IoU with the reference
   (gate ``min_mask_iou`` for an fp32 reasoner), and whether the generated tokens are identical.

Numbers go to ``manifest.validation["lens"]``; a failed gate raises ``ExportValidationError`` and the engine
is not published.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import ExportValidationError
from segzero_edge.sam2.host import mask_iou

from ..reasoner_export.validate import validation_samples

log = logging.getLogger(__name__)


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def validate_lens(engine: Path, ckpt, cfg) -> dict[str, Any]:
    """Run the checks of the module docstring on the staged engine ``engine``; returns the numbers."""
    from segzero_edge import Segmenter
    from segzero_edge.lens import LensPipeline
    from segzero_edge.ort import SessionFactory
    from segzero_edge.reasoner import GenerationOptions

    from .reference import LensReference

    ref = LensReference(
        ckpt.path, input_size=ckpt.preprocess.input_size, template=cfg.template, sam2_config=cfg.sam2_config
    )
    samples = validation_samples(cfg.validation_images, seed=7)
    weights = cfg.reasoner.weights
    options = GenerationOptions(max_new_tokens=cfg.validation_tokens, constrained=False, stop_at_answer=False)
    hidden_rel, token_rel, decoder_iou, e2e_iou, same_tokens = [], {p: [] for p in cfg.context_weights}, [], [], 0
    variant_iou: dict[str, list[float]] = {p: [] for p in cfg.context_weights}
    with Segmenter(engine, device="cpu", verify="none", threads=cfg.reasoner.threads) as seg:
        sessions = SessionFactory("cpu", threads=cfg.reasoner.threads)
        lens_variants = {
            p: LensPipeline(engine, seg.manifest, sessions=sessions, context=p) for p in cfg.context_weights
        }
        for image, question in samples:
            r = ref.predict(image, question, max_new_tokens=cfg.validation_tokens)
            vision = seg.reasoner.encode(image)
            hidden = seg.reasoner.query_hidden(question, r.token_ids, vision, lens_variants["fp32"].queries)
            hidden_rel.append(_rel(hidden, r.query_hidden))
            feats = seg.sam2.encode(image)
            decoder_iou.append(mask_iou(lens_variants["fp32"].decode(feats, r.sparse_prompt).mask, r.mask))
            for p, lens in lens_variants.items():
                token = lens.context(r.query_hidden)
                token_rel[p].append(_rel(token, r.sparse_prompt))
                variant_iou[p].append(mask_iou(lens.decode(feats, token).mask, r.mask))
            generated = seg.reasoner.generate(None, question, options, vision=vision)
            same_tokens += int(list(generated.token_ids) == list(r.token_ids))
            res = seg.predict(image, question, max_new_tokens=cfg.validation_tokens)
            e2e_iou.append(mask_iou(res.mask, r.mask))
            log.info(
                "lens validation %r: hidden rel %.2e, decoder IoU %.4f, end-to-end IoU %.4f",
                question,
                hidden_rel[-1],
                decoder_iou[-1],
                e2e_iou[-1],
            )
    numbers: dict[str, Any] = {
        "images": len(samples),
        "reasoner_weights": weights,
        "mask_pass_hidden_max_rel_diff": max(hidden_rel),
        "context": {
            p: {"sparse_prompt_max_rel_diff": max(token_rel[p]), "mask_iou_min": min(variant_iou[p])}
            for p in cfg.context_weights
        },
        "mask_decoder_iou_min": min(decoder_iou),
        "end_to_end_mask_iou_min": min(e2e_iou),
        "end_to_end_mask_iou_mean": float(np.mean(e2e_iou)),
        "end_to_end_tokens_identical": same_tokens,
    }
    problems = []
    if weights == "fp32" and numbers["mask_pass_hidden_max_rel_diff"] > cfg.hidden_rtol:
        problems.append(f"mask-pass hidden states differ by {max(hidden_rel):.2e} (gate {cfg.hidden_rtol:g})")
    if max(token_rel["fp32"]) > cfg.context_rtol:
        problems.append(
            f"the float context graph's token differs by {max(token_rel['fp32']):.2e} (gate {cfg.context_rtol:g})"
        )
    if min(decoder_iou) < cfg.min_mask_iou:
        problems.append(f"mask decoder IoU {min(decoder_iou):.4f} < {cfg.min_mask_iou}")
    if weights == "fp32" and min(e2e_iou) < cfg.min_mask_iou:
        problems.append(f"end-to-end mask IoU {min(e2e_iou):.4f} < {cfg.min_mask_iou}")
    if problems:
        raise ExportValidationError(
            "the LENS engine disagrees with the torch reference: " + "; ".join(problems),
            hint="nothing was written; report this with the checkpoint and segzero-edge versions",
        )
    return numbers
