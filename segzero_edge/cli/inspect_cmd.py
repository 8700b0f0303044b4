"""``segzero-edge inspect ENGINE_DIR``: show the manifest, check every file, say whether this device can run it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import SegZeroError
from ..manifest import Manifest, load_manifest, verify_files
from .base import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "engine_dir",
        type=Path,
        help="engine directory written by `segzero-edge export` (the folder holding manifest.json)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="check file presence and sizes only, not their sha256 (fast for multi-GB models)",
    )
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary")


def _fmt_shape(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _summary(m: Manifest, engine_dir: Path) -> list[str]:
    lines = [
        f"engine directory  {engine_dir}",
        f"format            v{m.format_version}, written by segzero-edge {m.segzero_edge_version} at {m.created_utc}",
        f"prompt version    {m.prompt_version}",
    ]
    for name, settings in m.components.items():
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, (dict, list, tuple)))
        lines.append(f"component {name:<8}{shown}")
    for src in m.sources:
        lines.append(f"source {src.component:<11}{src.path} (sha256 {src.sha256[:12]}…)")
    for gname, g in m.graphs.items():
        quant = (" " + ",".join(f"{k}={v}" for k, v in g.quantization.items())) if g.quantization else ""
        lines.append(f"graph {gname:<20}{g.file}  {g.precision}{quant}")
        for t in g.inputs:
            lines.append(f"    in  {t.name:<22}{t.dtype:<8}{_fmt_shape(t.shape)}")
        for t in g.outputs:
            lines.append(f"    out {t.name:<22}{t.dtype:<8}{_fmt_shape(t.shape)}")
        for dim, prof in g.dynamic_dims.items():
            lines.append(f"    dim {dim:<22}min/opt/max {prof[0]}/{prof[1]}/{prof[2]}")
    for comp, numbers in m.validation.items():
        for k, v in numbers.items():
            lines.append(f"validation {comp}.{k} = {v}")
    total = sum(f.size for f in m.files)
    lines.append(f"files             {len(m.files)} ({total / 1e6:.1f} MB)")
    return lines


def _device_lines(m: Manifest, engine_dir: Path) -> list[str]:
    lines = []
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        lines.append(f"onnxruntime       {ort.__version__}, providers: {', '.join(providers)}")
        lines.append(
            "this device       can run it with ONNX Runtime (CPU"
            + (", CUDA" if "CUDAExecutionProvider" in providers else "")
            + ")"
        )
    except ImportError:
        lines.append("onnxruntime       not installed -> pip install 'segzero-edge[ort]' (or [ort-gpu])")
        lines.append("this device       cannot run it until ONNX Runtime is installed")
    for src in m.sources:
        there = Path(src.path).exists()
        lines.append(
            f"torch backend     {src.component} source {src.path}: "
            + (
                "present"
                if there
                else f"missing here (pass --{src.component}-checkpoint to use `predict --backend torch`)"
            )
        )
    for build in m.trt_builds:
        try:
            verify_files(build.files, engine_dir, "size")
            state = "files present"
        except SegZeroError as exc:
            state = f"unusable: {exc.message}"
        lines.append(
            f"tensorrt build    trt/{build.key}: {build.gpu_name}, TensorRT {build.tensorrt_version} ({state})"
        )
    if not m.trt_builds:
        lines.append("tensorrt build    none (run `segzero-edge build ENGINE_DIR` on the target GPU)")
    return lines


def _run(args: argparse.Namespace) -> int:
    engine_dir: Path = args.engine_dir
    manifest = load_manifest(engine_dir, verify="size" if args.quick else "full")
    if args.json:
        json.dump(manifest.to_dict(), sys.stdout, indent=2)
        print()
        return 0
    for line in _summary(manifest, engine_dir):
        print(line)
    print(
        f"file check        all {len(manifest.files)} files present"
        + (", sizes match" if args.quick else ", sizes and sha256 match")
    )
    for line in _device_lines(manifest, engine_dir):
        print(line)
    return 0


COMMAND = Command(
    name="inspect",
    add_arguments=_add_arguments,
    run=_run,
    description="Show an engine directory's manifest (components, graphs with their inputs and outputs, "
    "precisions, validation numbers, source checkpoints), check that every listed file is present and "
    "unmodified, and say whether this device can run it (ONNX Runtime providers, TensorRT builds, and whether "
    "the source checkpoints that `predict --backend torch` loads are on this machine).",
)
