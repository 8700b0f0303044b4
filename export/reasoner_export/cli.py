"""``segzero-edge export reasoner --model HF_DIR --out ENGINE_DIR --weights int4|int8|fp16|fp32``."""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="Hugging Face Qwen2.5-VL checkpoint directory")
    p.add_argument(
        "--out", required=True, type=Path, help="engine directory (created; an existing one keeps its other components)"
    )
    add_reasoner_options(p)


def add_reasoner_options(p: argparse.ArgumentParser, *, family: bool = True) -> None:
    """The reasoner's export options (``--family`` only where the command does not fix it)."""
    p.add_argument(
        "--weights",
        default="int4",
        choices=("int4", "int8", "fp16", "fp32"),
        help="decoder linear-layer precision (default: int4)",
    )
    p.add_argument("--block-size", type=int, default=128, help="INT4/INT8 block size along K (default: 128)")
    p.add_argument(
        "--lm-head",
        default="auto",
        choices=("auto", "int4", "int8", "fp16", "fp32"),
        help="LM head precision (auto: int8 for int4/int8 exports, else as --weights)",
    )
    p.add_argument(
        "--int8-layers",
        type=_layers,
        default=(),
        metavar="I,J",
        help="with --weights int4: decoder layers (0-based, comma-separated) kept INT8, e.g. 0 for the "
        "first layer, which INT4 hurts most (default: none)",
    )
    p.add_argument(
        "--accuracy-level",
        type=int,
        default=4,
        choices=(0, 1, 2, 3, 4),
        help="MatMulNBits accuracy_level: 4 = int8 activations in ONNX Runtime's CPU kernels (default; "
        "0 = fp32 compute, 40x slower decode with the INT8 LM head on ORT 1.31 CPU, see "
        "benchmarks/results/reasoner_cpu.md)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square model input in pixels (default: the checkpoint's segzero_edge.json, else 840)",
    )
    if family:
        p.add_argument(
            "--family",
            default=None,
            choices=("seg_zero", "vision_reasoner"),
            help="model family: its prompt, answer grammar and SAM2 prompting (default: the checkpoint's "
            "segzero_edge.json, else seg_zero; official VisionReasoner checkpoints need vision_reasoner)",
        )
    p.add_argument("--embeddings-dtype", default="auto", choices=("auto", "float32", "float16"))
    p.add_argument(
        "--max-context",
        type=int,
        default=None,
        help="longest context (prompt + generated tokens) the engine accepts, also its TensorRT profiles "
        "(default: image tokens + 2048)",
    )
    p.add_argument(
        "--validate",
        default="full",
        choices=("full", "quick", "none"),
        help="parity checks against transformers before anything is written (default: full)",
    )
    p.add_argument(
        "--validation-pairs", type=int, default=5, help="image/question pairs of the full validation (default: 5)"
    )
    p.add_argument(
        "--validation-tokens",
        type=int,
        default=24,
        help="greedy tokens per validation generation, also the constrained generation's thinking budget (default: 24)",
    )
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for validation")
    p.add_argument(
        "--reference-device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where validation runs the transformers reference (default auto: CUDA when torch has it)",
    )
    p.add_argument(
        "--no-memory-check",
        dest="memory_check",
        action="store_false",
        help="skip the check that refuses, before writing anything, an export whose estimated peak memory "
        "exceeds what the machine has available",
    )


def _layers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer indices such as 0 or 0,27, got {text!r}"
        ) from exc


def sigterm_to_exit(signum, frame):  # pragma: no cover - exercised through a subprocess test
    raise SystemExit(128 + signum)


def reasoner_config(args: argparse.Namespace, **fixed):
    """The ``ReasonerExportConfig`` of ``add_reasoner_options``' arguments (``fixed`` adds or overrides fields)."""
    from .onnx_export import ReasonerExportConfig

    values = dict(
        weights=args.weights,
        block_size=args.block_size,
        lm_head=args.lm_head,
        int8_layers=args.int8_layers,
        accuracy_level=args.accuracy_level,
        input_size=args.input_size,
        embeddings_dtype=args.embeddings_dtype,
        max_context=args.max_context,
        validate=args.validate,
        validation_pairs=args.validation_pairs,
        validation_tokens=args.validation_tokens,
        threads=args.threads,
        reference_device=args.reference_device,
        memory_check=args.memory_check,
        family=getattr(args, "family", None),
    )
    return ReasonerExportConfig(**(values | fixed))


def run(args: argparse.Namespace) -> int:
    from .onnx_export import export_reasoner

    cfg = reasoner_config(args)
    # A `kill` must unwind like Ctrl-C so the temporary directory is removed and --out stays untouched.
    previous = signal.signal(signal.SIGTERM, sigterm_to_exit)
    try:
        manifest = export_reasoner(args.model, args.out, cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    numbers = manifest.validation.get("reasoner", {})
    log.info("reasoner exported to %s (%s); validation: %s", args.out, cfg.weights, dict(numbers))
    return 0
