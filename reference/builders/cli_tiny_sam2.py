"""``segzero-edge export tiny-sam2``: write a random-weight SAM2 checkpoint."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="the .pt file to write")
    parser.add_argument(
        "--config",
        default="sam2.1_hiera_t",
        help="official SAM2 config name, e.g. sam2.1_hiera_t, sam2_hiera_l (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from .sam2 import build_sam2_checkpoint

    path = build_sam2_checkpoint(args.out, args.config, seed=args.seed)
    print(f"wrote {path} (random weights, config {args.config})")
    return 0
