"""``segzero-edge build ENGINE_DIR``: TensorRT engines for this GPU (needs the ``tensorrt`` extra)."""

from __future__ import annotations

import argparse
import json
import logging

from ..cli.base import Command
from ..sam2.contract import ENCODER as SAM2_ENCODER

log = logging.getLogger(__name__)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine_dir", help="engine directory written by `segzero-edge export`")
    parser.add_argument(
        "--graphs",
        nargs="+",
        default=(),
        help="graphs to build (default: every graph with a TensorRT policy: the SAM2 image encoder and mask "
        "decoder, and the tracker's memory attention, mask decoder and memory encoder)",
    )
    parser.add_argument(
        "--encoder-precision",
        choices=("fp16-mixed", "fp32"),
        default="fp16-mixed",
        help="SAM2 image encoder: FP16 with LayerNorm/softmax/reductions in FP32, or FP32 (default: %(default)s)",
    )
    parser.add_argument("--workspace-gib", type=float, default=4.0, help="builder workspace (default: %(default)s)")
    parser.add_argument(
        "--min-iou",
        type=float,
        default=0.99,
        help="reject the build if a SAM2 mask, or a tracked frame's mask, differs from ONNX Runtime FP32 by more "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-check", action="store_true", help="record the engines without comparing masks")


def _run(args: argparse.Namespace) -> int:
    from .build import BuildOptions, build_engines

    options = BuildOptions(
        graphs=tuple(args.graphs),
        precision={SAM2_ENCODER: args.encoder_precision},
        workspace_gib=args.workspace_gib,
    )
    check = None
    if not args.no_check:
        from ..sam2.trt_check import check_trt_sam2
        from ..tracker.trt_backend import has_trt_build
        from ..tracker.trt_check import check_trt_tracker

        def check(manifest):
            numbers = {}
            if SAM2_ENCODER in manifest.graphs:
                numbers["sam2"] = check_trt_sam2(args.engine_dir, manifest, min_iou=args.min_iou)
            if has_trt_build(manifest):  # the staged build holds the tracker engines: track a clip with them
                numbers["tracker"] = check_trt_tracker(args.engine_dir, manifest, min_iou=args.min_iou)
            return numbers

    build = build_engines(args.engine_dir, options, check=check, progress=lambda msg: log.info("%s", msg))
    print(f"built {len(build.engines)} engine(s) in {args.engine_dir}/trt/{build.key}/")
    print(
        json.dumps(
            {
                "engines": dict(build.engines),
                "settings": json.loads(json.dumps(dict(build.settings), default=dict)),
            },
            indent=2,
        )
    )
    return 0


COMMAND = Command(
    name="build",
    add_arguments=_add_arguments,
    run=_run,
    description="Build TensorRT engines for this GPU from an engine directory's ONNX graphs, check them "
    "against ONNX Runtime, and record them in the manifest (trt/<gpu>-<tensorrt version>/).",
)
