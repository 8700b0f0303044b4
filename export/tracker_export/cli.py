"""``segzero-edge export tracker``: SAM2's video memory graphs into an engine directory (validated
frame by frame against the official ``SAM2VideoPredictor``)."""

from __future__ import annotations

import argparse
import json
import signal


def add_arguments(parser: argparse.ArgumentParser, *, standalone: bool = True) -> None:
    """The tracker's options; ``standalone=False`` adds only those ``export sam2`` shares."""
    if standalone:
        parser.add_argument(
            "--checkpoint", required=True, help="the official SAM 2 / 2.1 .pt file the engine's sam2/ came from"
        )
        parser.add_argument("--config", required=True, help="its official config name or config .yaml file")
        parser.add_argument("--out", required=True, help="engine directory holding that sam2 component")
        parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default: %(default)s)")
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--tracker-validation-frames",
        type=int,
        default=30,
        metavar="T",
        help="frames of the seeded clip on which the tracker is checked against the official "
        "SAM2VideoPredictor, every frame gated at mask IoU 0.999 (default: %(default)s; measured: hiera-t "
        "at 1024 px, both sides, 2 objects, 18 s a frame on 2 CPU cores; the world's 224 px model 0.1 s)",
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def export_from_args(args: argparse.Namespace, *, max_objects: int = 16, max_points: int = 16) -> dict:
    """Run ``export_tracker`` for parsed arguments; returns its validation numbers."""
    from segzero_edge.errors import ConfigError

    from .export import export_tracker

    if args.tracker_validation_frames < 8:
        raise ConfigError("--tracker-validation-frames must be >= 8 (the clip needs its exit and re-entry)")
    manifest = export_tracker(
        args.checkpoint,
        args.out,
        args.config,
        opset=args.opset,
        max_objects=max_objects,
        max_points=max_points,
        validation_frames=args.tracker_validation_frames,
        progress=True,
    )
    return dict(manifest.validation["tracker"])


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        numbers = export_from_args(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"wrote {args.out} (tracker)")
    print_numbers(numbers)
    return 0


def print_numbers(numbers: dict) -> None:
    keys = ("frames", "objects", "mask_iou_min", "mask_iou_mean", "object_presence_agreement")
    print("tracker validation vs the official SAM2VideoPredictor:")
    shown = {k: numbers[k] for k in keys}
    if "mask_start" in numbers:
        shown["mask_start"] = {k: numbers["mask_start"][k] for k in keys if k in numbers["mask_start"]}
    print(json.dumps(shown, indent=2))
