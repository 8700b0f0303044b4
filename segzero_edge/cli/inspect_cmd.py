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


#: Width of the label column of the summary tables (wider labels widen their table).
LABEL_WIDTH = 16


def _columns(rows: list[tuple[str, ...]], indent: str = "", label_width: int = 0) -> list[str]:
    """``rows`` as aligned text: each column as wide as its longest cell (the first at least
    ``label_width``), two spaces between columns."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(len(r) for r in rows))]
    widths[0] = max(widths[0], label_width)
    return [
        indent + "  ".join(c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)).rstrip() for r in rows
    ]


def _summary(m: Manifest, engine_dir: Path) -> list[str]:
    head: list[tuple[str, ...]] = [
        ("engine directory", str(engine_dir)),
        ("format", f"v{m.format_version}, written by segzero-edge {m.segzero_edge_version} at {m.created_utc}"),
        ("prompt version", m.prompt_version),
    ]
    for name, settings in m.components.items():
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, (dict, list, tuple)))
        head.append((f"component {name}", shown))
    for src in m.sources:
        head.append((f"source {src.component}", f"{src.path} (sha256 {src.sha256[:12]}…)"))
    total = sum(f.size for f in m.files)
    head.append(("files", f"{len(m.files)} ({total / 1e6:.1f} MB)"))
    lines = _columns(head, label_width=LABEL_WIDTH)
    for gname, g in m.graphs.items():
        quant = (" " + ",".join(f"{k}={v}" for k, v in g.quantization.items())) if g.quantization else ""
        lines.append(f"graph {gname}: {g.file}  {g.precision}{quant}")
        rows = [("in", t.name, t.dtype, _fmt_shape(t.shape)) for t in g.inputs]
        rows += [("out", t.name, t.dtype, _fmt_shape(t.shape)) for t in g.outputs]
        dims = [("dim", dim, f"min/opt/max {p[0]}/{p[1]}/{p[2]}") for dim, p in g.dynamic_dims.items()]
        for table in (rows, dims):
            lines += _columns(table, indent="    ") if table else []
    rows = [(f"validation {comp}.{k}", f"= {v}") for comp, numbers in m.validation.items() for k, v in numbers.items()]
    lines += _columns(rows, label_width=LABEL_WIDTH) if rows else []
    return lines


def _device_lines(m: Manifest, engine_dir: Path) -> list[str]:
    """``(label, text)`` rows about what this machine can run."""
    lines: list[tuple[str, str]] = []
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        lines.append(("onnxruntime", f"{ort.__version__}, providers: {', '.join(providers)}"))
        cuda = ", CUDA" if "CUDAExecutionProvider" in providers else ""
        lines.append(("this device", f"can run it with ONNX Runtime (CPU{cuda})"))
    except ImportError:
        lines.append(("onnxruntime", "not installed -> pip install 'segzero-edge[ort]' (or [ort-gpu])"))
        lines.append(("this device", "cannot run it until ONNX Runtime is installed"))
    for src in m.sources:
        there = Path(src.path).exists()
        state = "present" if there else f"missing here (pass --{src.component}-checkpoint to `predict --backend torch`)"
        lines.append(("torch backend", f"{src.component} source {src.path}: {state}"))
    for build in m.trt_builds:
        try:
            verify_files(build.files, engine_dir, "size")
            state = "files present"
        except SegZeroError as exc:
            state = f"unusable: {exc.message}"
        lines.append(
            ("tensorrt build", f"trt/{build.key}: {build.gpu_name}, TensorRT {build.tensorrt_version} ({state})")
        )
    if not m.trt_builds:
        lines.append(("tensorrt build", "none (run `segzero-edge build ENGINE_DIR` on the target GPU)"))
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
    check = f"all {len(manifest.files)} files present" + (", sizes match" if args.quick else ", sizes and sha256 match")
    for line in _columns([("file check", check), *_device_lines(manifest, engine_dir)], label_width=LABEL_WIDTH):
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
