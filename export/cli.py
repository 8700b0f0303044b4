"""``segzero-edge export ...``: the export subcommands.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; this
file only lists them, so ``--help`` stays fast and nothing heavy is imported before it is needed.
"""

from __future__ import annotations

import argparse
import importlib

from segzero_edge.cli.base import Command

#: subcommand -> (help, module: relative to this package, or absolute)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "tiny-reasoner": (
        "write a tiny random Qwen2.5-VL checkpoint (HF format) for tests and demos",
        "segzero_edge.reference.builders.cli_tiny_reasoner",
    ),
    "tiny-sam2": (
        "write a random-weight SAM2 checkpoint (official .pt format)",
        "segzero_edge.reference.builders.cli_tiny_sam2",
    ),
    "sam2": ("official SAM2 checkpoint -> sam2/ ONNX graphs + manifest, validated", ".sam2_export.cli"),
    "tracker": (
        "SAM2's video memory -> tracker ONNX graphs, validated against SAM2VideoPredictor (export sam2 does it too)",
        ".tracker_export.cli",
    ),
    "reasoner": (
        "Qwen2.5-VL checkpoint -> reasoner ONNX graphs (INT4/INT8/fp16/fp32), validated",
        ".reasoner_export.cli",
    ),
    "lens": (
        "LENS checkpoint -> a complete engine (reasoner with hidden states, its SAM2, the context head), validated",
        ".lens_export.cli",
    ),
}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    for name, (help_text, module) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(module, __package__)
        mod.add_arguments(p)
        p.set_defaults(_export_run=mod.run)


def _run(args: argparse.Namespace) -> int:
    return int(args._export_run(args) or 0)


COMMAND = Command(
    name="export",
    add_arguments=_add_arguments,
    run=_run,
    description="Turn checkpoints into an engine directory (ONNX graphs + manifest.json), "
    "or write random test checkpoints.",
)
