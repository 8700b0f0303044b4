"""``segzero-edge bench ENGINE_DIR``: per-stage latency of an engine directory on this machine.

Prints a markdown table (p50/p90/p99 per stage, generated tokens and decode tokens/s). Writes only the files
named: the JSON report (``--out``), the table (``--markdown``) and a PNG (``--plot``, needs matplotlib:
``pip install 'segzero-edge[bench]'``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputError, missing_extra
from ..files import writable_parent
from .base import DEVICE_HELP, Command, command_line, positive_int
from .options import add_lens_argument, add_option_arguments, option_values

log = logging.getLogger(__name__)

SCHEMA = "segzero-edge.bench/1"
#: The request options this command exposes (``SegmenterOptions.names()``).
OPTIONS = ("max_new_tokens", "constrained", "overlap")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine_dir", type=Path, help="engine directory written by `segzero-edge export`")
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        help='an image, or a folder of images, each optionally with <name>.json holding its query as {"text": ...}',
    )
    parser.add_argument(
        "--text", nargs="+", default=None, help="instruction(s), used in turn (overrides the <name>.json queries)"
    )
    parser.add_argument("--runs", type=positive_int, default=10, help="timed requests (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report to this file")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown table to this file")
    parser.add_argument("--plot", type=Path, default=None, help="latency plot PNG (needs matplotlib)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "ort", "trt"],
        help="SAM2 backend: ort, or trt (engines from `segzero-edge build`) (default: auto)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per ONNX Runtime session")
    add_option_arguments(parser, OPTIONS)
    add_lens_argument(parser)
    parser.add_argument(
        "--cache",
        action="store_true",
        help="keep SAM2 features and vision embeddings between requests (repeated frames); by "
        "default every request encodes its image",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def find_requests(images: Path, texts: list[str] | None) -> list[tuple[Path, str]]:
    """``(image path, text)`` pairs: each image with ``texts[i % len(texts)]`` or its ``<name>.json`` query."""
    if images.is_dir():
        paths = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif images.is_file():
        paths = [images]
    else:
        raise InputError(f"--images {images} does not exist")
    if not paths:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images}")
    out = []
    for i, p in enumerate(paths):
        if texts:
            out.append((p, texts[i % len(texts)]))
            continue
        meta = p.with_suffix(".json")
        text = json.loads(meta.read_text()).get("text") if meta.is_file() else None
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"no query for {p}", hint=f'pass --text, or write {meta.name} with {{"text": ...}}')
        out.append((p, text))
    return out


class _Progress:
    """tqdm when installed, else one updating line on stderr (nothing when disabled)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self._bar = total, enabled, 0, None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc="bench", unit="req", file=sys.stderr)
            except ImportError:
                pass

    def update(self, label: str) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(label, refresh=False)
            self._bar.update(1)
        elif self.enabled:
            print(f"\rbench {self.done}/{self.total} {label}   ", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            print(file=sys.stderr)


def _engine_summary(manifest: Any) -> dict[str, Any]:
    return {
        name: {"file": g.file, "precision": g.precision, "quantization": dict(g.quantization or {})}
        for name, g in manifest.graphs.items()
    }


def _providers(seg: Any) -> dict[str, list[str]]:
    """The execution providers each stage's backend got (graph backends only)."""
    return {
        stage: list(backend.providers)
        for stage, backend in (("reasoner", seg.reasoner.backend), ("sam2", seg.sam2.backend))
        if hasattr(backend, "providers")
    }


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Horizontal bars of the p50 per stage with p90 / p99 markers (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise missing_extra("--plot", "bench", cause=exc) from exc
    names = list(report["stages"])[::-1]
    st = [report["stages"][n] for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.6))
    ax.barh(names, [s["p50"] for s in st], color="#4c72b0", label="p50")
    ax.scatter([s["p90"] for s in st], names, marker="|", s=200, color="#dd8452", label="p90", zorder=3)
    ax.scatter([s["p99"] for s in st], names, marker="x", color="#c44e52", label="p99", zorder=3)
    ax.set_xlabel("ms per request")
    m = report["machine"]
    ax.set_title(
        f"segzero-edge bench: {Path(report['engine_dir']).name} on {report['device']} "
        f"({m['cpu']}, {report['config']['runs']} runs)",
        fontsize=9,
        pad=24,
    )
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run(args: argparse.Namespace) -> int:
    from ..evaluation.latency import machine_info, markdown_table, run_bench
    from ..frame import load_image
    from ..segmenter import Segmenter

    if args.plot is not None:  # fail before minutes of measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "segzero-edge bench: --plot needs matplotlib.\n  -> pip install 'segzero-edge[bench]'", file=sys.stderr
            )
            return 3
    for name in ("out", "markdown", "plot"):  # fail before minutes of measuring, not after
        if getattr(args, name) is not None:
            setattr(args, name, writable_parent(getattr(args, name)))
    pairs = find_requests(args.images, args.text)
    requests = [(load_image(p), t) for p, t in pairs]
    machine = machine_info()
    started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    t0 = time.perf_counter()
    seg = Segmenter(
        args.engine_dir,
        device=args.device,
        backend=args.backend,
        threads=args.threads,
        cache_size=4 if args.cache else 0,
        **option_values(args, OPTIONS),
        lens_context=args.lens_context,
    )
    load_s = time.perf_counter() - t0
    progress = _Progress(args.warmup + args.runs, enabled=not args.no_progress)

    def on_run(i: int, run: Any) -> None:
        progress.update("warm-up" if run is None else f"{run.stages.get('total', 0.0):.0f} ms")

    try:
        with seg:
            report = run_bench(
                seg,
                requests,
                runs=args.runs,
                warmup=args.warmup,
                on_run=on_run,
                track_gpu=seg.reasoner.backend.device != "cpu",
            )
            device = {"reasoner": seg.reasoner.backend.device, "sam2": seg.sam2.backend.device}
            backend = {"reasoner": seg.reasoner.backend.name, "sam2": seg.sam2.backend.name}
            providers = _providers(seg)
            engine = _engine_summary(seg.manifest)
    finally:
        progress.close()
    result = {
        "schema": SCHEMA,
        "command": command_line("bench", args, ["engine_dir"]),
        "date": started,
        "machine": machine,
        "load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "threads": args.threads,
        "engine_dir": str(args.engine_dir),
        "engine": engine,
        "device": device["reasoner"],
        "devices": device,
        "backend": backend,
        "providers": providers,
        "versions": machine["versions"],
        "config": {
            "runs": args.runs,
            "warmup": args.warmup,
            "cache": args.cache,
            "overlap": args.overlap,
            "constrained": args.constrained,
            "max_new_tokens": args.max_new_tokens,
        },
        "requests": [
            {"image": str(p), "text": t, "size": [int(r[0].shape[1]), int(r[0].shape[0])]}
            for (p, t), r in zip(pairs, requests)
        ],
        "load_s": load_s,
        **report.to_dict(),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown_table(result)
    mem = result["memory"]
    print(
        f"segzero-edge bench: {args.engine_dir} on {result['device']} (sam2 backend {backend['sam2']}), "
        f"{args.runs} runs after {args.warmup} warm-up, load average {machine['load_average']}"
    )
    print()
    print(table)
    print()
    gpu = f", GPU {mem['gpu_peak_mb']:.0f} MB" if mem.get("gpu_peak_mb") is not None else ""
    print(f"peak host memory {mem['peak_rss_mb']:.0f} MB{gpu}; engine load {load_s:.1f} s")
    if args.markdown is not None:
        args.markdown.write_text(
            f"# segzero-edge bench\n\n`{result['command']}` ({started}, {machine['cpu']}, "
            f"load average {machine['load_average']})\n\n{table}\n"
        )
    if args.plot is not None:
        plot_report(result, args.plot)
    written = [str(p) for p in (args.out, args.markdown, args.plot) if p is not None]
    if written:
        print("wrote " + ", ".join(written))
    return 0


COMMAND = Command(
    name="bench",
    add_arguments=_add_arguments,
    run=_run,
    description="Measure per-stage latency of an engine directory: preprocess, vision, prefill, decode (tokens/s), "
    "SAM2 encode and decode, postprocess and total, with p50/p90/p99, generated tokens per request, peak host "
    "(and GPU) memory, device, backend and versions. Prints a markdown table; writes only the files named: "
    "JSON (--out), the table (--markdown) and a plot (--plot, needs matplotlib).",
)
