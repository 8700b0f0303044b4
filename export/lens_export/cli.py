"""``segzero-edge export lens --model LENS_DIR --out ENGINE_DIR``: a LENS checkpoint -> a complete engine."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from segzero_edge.prompt import LENS_TEMPLATES

from ..reasoner_export.cli import add_reasoner_options, reasoner_config, sigterm_to_exit

log = logging.getLogger(__name__)

CONTEXT_WEIGHTS = ("fp32", "int8", "int4")


def _weights_list(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in CONTEXT_WEIGHTS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(CONTEXT_WEIGHTS)}, got {text!r}"
        )
    return items


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="LENS checkpoint directory as published (config.json, *.safetensors with model.*, visual.*, "
        "learnable_query, connector.*, conv_1d.*, proj_to_sam.*, sam.*; tokenizer and preprocessor files)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="engine directory: its reasoner, sam2 and lens components are written together",
    )
    p.add_argument(
        "--template",
        default="grounding",
        choices=tuple(LENS_TEMPLATES),
        help="the prompt the checkpoint was trained with: grounding (OuyBin/LENS, LENS_ReasonSeg, LENS_ReasonSeg_FT) "
        "or cot (LENS_ReasonSeg_CoT) (default: grounding)",
    )
    p.add_argument(
        "--context-weights",
        type=_weights_list,
        default=CONTEXT_WEIGHTS,
        metavar="LIST",
        help="context graph variants to write: fp32 always, int8/int4 weight-only (default: fp32,int8,int4)",
    )
    p.add_argument(
        "--default-context",
        default="fp32",
        choices=CONTEXT_WEIGHTS,
        help="the context variant the runtime runs by default (default: fp32)",
    )
    p.add_argument(
        "--sam2-config",
        default=None,
        help="SAM2 config of the checkpoint's sam.* weights (default: guessed from them; LENS uses sam2_hiera_l)",
    )
    p.add_argument(
        "--stock-sam2",
        type=Path,
        default=None,
        help="the stock SAM2 .pt (sam2_hiera_large.pt) to compare the image encoder with; a difference is "
        "reported. The tracker (SAM2's video memory, for `seg.track` from a LENS mask; LENS checkpoints have "
        "none) is exported from this file too, with its own image encoder",
    )
    p.add_argument("--no-tracker", action="store_true", help="skip the tracker even with --stock-sam2")
    from ..tracker_export.cli import add_arguments as add_tracker_arguments

    add_tracker_arguments(p, standalone=False)
    p.add_argument(
        "--validation-images",
        type=int,
        default=3,
        help="seeded images of the end-to-end check against the torch reference (0 skips it; default: 3)",
    )
    add_reasoner_options(p, family=False)


def run(args: argparse.Namespace) -> int:
    from .export import LensExportConfig, export_lens

    cfg = LensExportConfig(
        reasoner=reasoner_config(args, family="lens", hidden_states=True, prompt_template=args.template),
        template=args.template,
        context_weights=args.context_weights,
        default_context=args.default_context,
        sam2_config=args.sam2_config,
        stock_sam2=args.stock_sam2,
        tracker=not args.no_tracker,
        tracker_validation_frames=args.tracker_validation_frames,
        validation_images=0 if args.validate == "none" else args.validation_images,
        validation_tokens=args.validation_tokens,
    )
    previous = signal.signal(signal.SIGTERM, sigterm_to_exit)
    try:
        manifest = export_lens(args.model, args.out, cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    numbers = manifest.validation.get("lens", {})
    log.info("LENS exported to %s; validation: %s", args.out, dict(numbers))
    return 0
