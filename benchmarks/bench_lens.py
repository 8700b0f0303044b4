"""Latency of the LENS path per stage against the Seg-Zero path, on the same reasoner, in one run.

One random checkpoint in LENS's published layout (``reference/builders/lens.py``) is exported twice:

* ``lens``: ``export lens`` (reasoner INT4 with a ``hidden_states`` output, the context graph fp32 / INT8 /
  INT4, the prompt-embedding mask decoder, SAM2 from ``sam.*``);
* ``seg_zero``: the same reasoner weights as a Seg-Zero engine (``export reasoner``, INT4) with the stock SAM2
  (``export sam2``): the box-and-points path.

Shapes: ``real`` = Qwen2.5-VL-3B's text and vision shapes with ``--layers`` decoder layers (2 by default, as
``bench_segmenter``'s real engine), input 840 (900 image tokens), LENS's context module at full size (Q = 64,
hidden 2048: 475 M parameters) and SAM2 hiera-t (both paths; LENS ships hiera-l, whose encoder is the same
stage in both); ``tiny`` = the test checkpoint. Both paths generate exactly ``--tokens`` tokens (greedy,
unconstrained; the random model's EOS is ignored by emptying each pipeline's ``eos_ids``, and the length is
checked), and run sequentially (``overlap=False``) so every stage is timed alone. Each round: a new frame
(one pixel differs, so no cache hits) through every engine, in alternating order. A random reasoner's Seg-Zero
answer does not parse, so that path's SAM2 decoder is timed on a fixed box and two points on the same frame
(``segment``) and added to its total. No frame cache: every request encodes its frame. Medians over rounds.

    .venv/bin/python benchmarks/bench_lens.py --shape real --rounds 3 --tokens 64

Writes ``benchmarks/results/lens_cpu.{json,md}``. Engines are cached under ``.cache/bench_lens/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench_lens"
QUESTION = "the cup the robot should pick up"
STAGES = ("preprocess", "vision", "prefill", "decode", "mask_pass", "connector", "sam2_encoder", "decoder", "total")


def build(shape: str, layers: int) -> tuple[Path, Path]:
    """``(lens engine, seg_zero engine)`` of ``shape`` (built on first use)."""
    from segzero_edge.export.lens_export.export import LensExportConfig, export_lens
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.reference.builders.lens import build_tiny_lens

    root = CACHE / f"{shape}_{layers}l"
    ckpt, stock = root / "checkpoint", root / "stock.pt"
    if not (ckpt / "config.json").is_file():
        real = shape == "real"
        build_tiny_lens(
            ckpt,
            size="3b" if real else "tiny",
            num_layers=layers if real else None,
            num_queries=64 if real else 8,
            stock_sam2=stock,
        )
    size = 840 if shape == "real" else 112
    reasoner = ReasonerExportConfig(weights="int4", validate="none", input_size=size)
    lens, sz = root / "engine_lens", root / "engine_seg_zero"
    if not (lens / "manifest.json").is_file():
        export_lens(ckpt, lens, LensExportConfig(reasoner=reasoner, validation_images=0))
    if not (sz / "manifest.json").is_file():
        export_reasoner(
            ckpt, sz, ReasonerExportConfig(weights="int4", validate="none", input_size=size, family="seg_zero")
        )
        export_sam2(stock, sz, Sam2ExportConfig(config="sam2_hiera_t", validation_images=1))
    return lens, sz


def _stages(res) -> dict[str, float]:
    t = res.timings_ms
    out = {k: t.get(k, 0.0) for k in ("preprocess", "vision", "prefill", "decode", "mask_pass", "connector")}
    out["sam2_encoder"] = t.get("sam2_preprocess", 0.0) + t.get("sam2_encoder", 0.0)
    out["decoder"] = t.get("mask_decoder", 0.0) + t.get("sam2_decoder", 0.0)  # LENS's / SAM2's prompt decoder
    out["total"] = t["total"]
    return out


def _box_decoder_ms(seg, frame: np.ndarray) -> float:
    """SAM2's decoder on a box and two points for ``frame`` (its ``sam2_decoder`` time alone). A random
    reasoner's answer does not parse, so the Seg-Zero path's decoder is timed on a fixed answer-shaped prompt."""
    res = seg.segment(frame, box=(160, 120, 480, 360), points=[(300, 240), (340, 250)])
    return res.timings_ms["sam2_decoder"]


def run(shape: str, layers: int, rounds: int, tokens: int, threads: int | None) -> dict:
    from segzero_edge import Segmenter
    from segzero_edge.lens import LensPipeline
    from segzero_edge.ort import SessionFactory

    lens_dir, sz_dir = build(shape, layers)
    base = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    opts = {"overlap": False, "max_new_tokens": tokens, "constrained": False, "stop_at_answer": False}
    seg_zero = Segmenter(sz_dir, device="cpu", threads=threads, cache_size=0, **opts)
    lens = Segmenter(lens_dir, device="cpu", threads=threads, cache_size=0, **opts)
    # one LENS Segmenter (the reasoner and SAM2 loaded once), its context variant swapped per request
    sessions = SessionFactory("cpu", threads=threads)
    heads = {"lens": lens.lens}
    for context in ("int8", "int4"):
        heads[f"lens, {context} context"] = LensPipeline(lens_dir, lens.manifest, sessions=sessions, context=context)
    for seg in (seg_zero, lens):  # the random model may emit EOS early: ignore it, so both paths run `tokens` steps
        seg.reasoner.eos_ids = ()
    names = ["seg_zero", *heads]
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in names}
    for r in range(rounds + 1):  # round 0 warms up
        frame = base.copy()
        frame[0, 0, 0] = r
        for name in names if r % 2 else names[::-1]:
            seg = seg_zero if name == "seg_zero" else lens
            if name != "seg_zero":
                seg.lens = heads[name]
            res = seg.predict(frame, QUESTION)
            if res.generation.generated_tokens != tokens:
                raise RuntimeError(f"{name} generated {res.generation.generated_tokens} tokens, not {tokens}")
            stages = _stages(res)
            if name == "seg_zero" and not res.found:
                ms = _box_decoder_ms(seg, frame)
                stages["decoder"] += ms
                stages["total"] += ms
            if r:
                samples[name].append(stages)
    seg_zero.close()
    lens.close()
    medians = {k: {s: round(statistics.median(x[s] for x in v), 2) for s in STAGES} for k, v in samples.items()}
    return {
        "shape": shape,
        "layers": layers,
        "rounds": rounds,
        "tokens": tokens,
        "threads": threads,
        "medians": medians,
    }


def _markdown(result: dict) -> str:
    lines = [
        "# LENS vs Seg-Zero path: CPU latency per stage (one run)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cpus']} CPUs, onnxruntime "
        f"{result['machine']['onnxruntime']}",
        "",
    ]
    for job in result["jobs"]:
        lines += [
            f"## {job['shape']} ({job['layers']} decoder layers), INT4 reasoner, {job['tokens']} generated tokens, "
            f"{job['rounds']} rounds, median ms",
            "",
            "| path | " + " | ".join(STAGES) + " |",
            "|---|" + "---|" * len(STAGES),
        ]
        for name, m in job["medians"].items():
            lines.append(f"| {name} | " + " | ".join(f"{m[s]:.1f}" for s in STAGES) + " |")
        lens, sz = job["medians"]["lens"], job["medians"]["seg_zero"]
        extra = lens["mask_pass"] + lens["connector"] + lens["decoder"] - sz["decoder"]
        lines += [
            "",
            f"LENS / Seg-Zero total: {lens['total'] / sz['total']:.2f}x; the LENS-only stages (mask pass + "
            f"connector + its decoder, minus SAM2's box decoder) add {extra:.0f} ms, the mask pass alone "
            f"{lens['mask_pass'] / max(lens['prefill'], 1e-9):.2f}x the prefill.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shape", action="append", choices=("real", "tiny"), help="default: real")
    ap.add_argument("--layers", type=int, default=2, help="decoder layers of the real shape (default 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64, help="generated tokens per request (default 64)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="lens_cpu")
    args = ap.parse_args()
    import onnxruntime

    from segzero_edge.evaluation.latency import cpu_model

    jobs = [run(s, args.layers, args.rounds, args.tokens, args.threads) for s in (args.shape or ["real"])]
    result = {
        "command": "python benchmarks/bench_lens.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "onnxruntime": onnxruntime.__version__,
            "load": os.getloadavg(),
        },
        "jobs": jobs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.0f} s")
