"""``segzero-edge export sam2``: official SAM2 checkpoint -> engine directory (ONNX + manifest)."""

from __future__ import annotations

import argparse
import json
import signal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="official SAM 2 / 2.1 .pt file ({'model': state_dict})")
    parser.add_argument(
        "--config",
        required=True,
        help="official config, e.g. sam2.1_hiera_t, sam2.1_hiera_l, sam2_hiera_b+ (or the Hydra path), or a "
        "config .yaml file in the official format (e.g. world/assets/sam2_tiny.yaml)",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="engine directory to create, or to update (its other components are kept)",
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default: %(default)s)")
    parser.add_argument(
        "--max-objects",
        type=int,
        default=16,
        help="TensorRT profile: most objects per decoder call (default: %(default)s)",
    )
    parser.add_argument(
        "--max-points",
        type=int,
        default=16,
        help="TensorRT profile: most prompt points per object, box corners included (default: %(default)s)",
    )
    parser.add_argument(
        "--validation-images",
        type=int,
        default=3,
        help="synthetic images of the export-time validation (default: %(default)s)",
    )
    parser.add_argument(
        "--mask-mode",
        choices=("best", "single"),
        default="best",
        help="runtime default: 'best' = Seg-Zero's highest-score multimask mask, 'single' = "
        "single-mask output with SAM2's stability fallback (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--no-tracker",
        action="store_true",
        help="skip the tracker component (SAM2's video memory, for `seg.track` and `segzero-edge track`)",
    )
    from ..tracker_export.cli import add_arguments as add_tracker_arguments

    add_tracker_arguments(parser, standalone=False)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    import torch

    from .config import Sam2ExportConfig
    from .export import export_sam2

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Sam2ExportConfig(
        config=args.config,
        opset=args.opset,
        max_objects=args.max_objects,
        max_points=args.max_points,
        validation_images=args.validation_images,
        default_mask_mode=args.mask_mode,
    )
    # `kill` (SIGTERM) cleans up like Ctrl-C: the temporary folder is removed, --out stays as it was.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        manifest = export_sam2(args.checkpoint, args.out, cfg, progress=True)
        tracker = None
        if not args.no_tracker:
            from ..tracker_export.cli import export_from_args

            tracker = export_from_args(args, max_objects=args.max_objects, max_points=args.max_points)
    finally:
        signal.signal(signal.SIGTERM, previous)
    v = manifest.validation["sam2"]
    keys = (
        "max_abs_diff",
        "mask_iou_min",
        "mask_choice_agreement",
        "runtime_preprocess_max_abs_diff",
        "runtime_mask_iou_min",
    )
    print(f"wrote {args.out} (sam2: {cfg.config})")
    print("validation vs the official model:")
    print(json.dumps({k: v[k] for k in keys}, indent=2))
    if tracker is not None:
        from ..tracker_export.cli import print_numbers

        print_numbers(tracker)
    return 0
