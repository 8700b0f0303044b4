"""End-to-end latency of ``Segmenter.predict``: SAM2 encoding overlapped with reasoning, and the feature cache.

For each engine directory (``tiny``: the test-sized random reasoner, fp32, input 112 + SAM2 hiera-t;
``real``: a random reasoner with the Qwen2.5-VL-3B shapes but 2 decoder layers, INT4, input 840
(900 image tokens) + SAM2 hiera-t at 1024) and each thread setting (reasoner intra-op threads,
SAM2 intra-op threads), ONE ``Segmenter`` runs interleaved rounds of:

* ``sequential``: ``overlap=False`` on a frame never seen before (both stages cold, one after the other);
* ``overlap``: ``overlap=True`` on a new frame (SAM2 encodes on a worker thread while the reasoner runs);
* ``cached``: a second question on the ``overlap`` frame (SAM2 features and vision embeddings reused).

New frames differ from the base image in one pixel, so the content-keyed caches miss. Stage figures come
from the ``sequential`` runs' own timings (each stage alone on the machine): reasoning (vision + prefill
+ decode), encoding (SAM2 preprocess + encoder), decoding (SAM2 mask decoder), pre/post (everything
else: image loading, answer decoding, mask upsampling). The target is
``overlap_total <= 1.1 x (max(reasoning, encoding) + decoding + pre/post)``; the ratio is reported
as measured. Medians over rounds; the variants alternate order each round so load drifts hit all.

Engines are built once under ``.cache/bench_segmenter/`` (gitignored): the real-shaped export runs
with ``validate="none"`` (peak RSS ~ vision-tower export) so it stays under ~10 GB.

    .venv/bin/python benchmarks/bench_segmenter.py --jobs real:2/2 tiny:2/2 tiny:2/1 tiny:1/1 real:2/1

Writes ``benchmarks/results/segmenter_cpu.json`` and ``.md``.
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

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench_segmenter"
QUESTIONS = ("the cup the robot should pick up", "the largest object on the table")


def build_engine(kind: str) -> Path:
    """The engine directory of ``kind`` (built on first use, then reused)."""
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.reference.builders import build_sam2_checkpoint, build_tiny_qwen25vl

    engine = CACHE / f"engine_{kind}"
    if (engine / "manifest.json").is_file():
        return engine
    qwen = CACHE / ("qwen3b_2l" if kind == "real" else "qwen_tiny")
    if not (qwen / "config.json").is_file():
        if kind == "real":
            build_tiny_qwen25vl(qwen, size="3b", num_layers=2, seed=0, overwrite=True)
        else:
            build_tiny_qwen25vl(qwen, "tiny", seed=0, overwrite=True)
    tmp = CACHE / f"engine_{kind}_tmp"
    weights = "int4" if kind == "real" else "fp32"
    export_reasoner(qwen, tmp, ReasonerExportConfig(weights=weights, validate="none", threads=2))
    ckpt = CACHE / "sam2.1_hiera_t.pt"
    if not ckpt.is_file():
        build_sam2_checkpoint(ckpt, "sam2.1_hiera_t", seed=0)
    export_sam2(ckpt, tmp, Sam2ExportConfig(config="sam2.1_hiera_t", validation_images=1))
    tmp.rename(engine)
    return engine


def _frame(base: np.ndarray, i: int) -> np.ndarray:
    f = base.copy()
    f[0, 0] = [(i * 37) % 256, (i * 91) % 256, (i // 256) % 256]
    return f


def _stages(res) -> dict[str, float]:
    t = res.timings_ms
    encoding = t.get("sam2_preprocess", 0.0) + t.get("sam2_encoder", 0.0)
    out = {
        "total": t["total"],
        "reasoning": t["reasoning"],
        "encoding": encoding,
        "decoding": t.get("sam2_decoder", 0.0),
        "sam2_wait": t.get("sam2_wait", 0.0),
    }
    out["pre_post"] = out["total"] - out["reasoning"] - out["sam2_wait"] - out["decoding"]
    return out


def run_setting(
    engine: Path,
    base: np.ndarray,
    threads: int | None,
    sam2_threads: int | None,
    rounds: int,
    max_new_tokens: int,
    counter: list[int],
) -> dict:
    from segzero_edge import Segmenter

    runs: dict[str, list[dict]] = {"sequential": [], "overlap": [], "cached": []}
    tokens = []
    with Segmenter(
        engine,
        device="cpu",
        backend="ort",
        threads=threads,
        sam2_threads=sam2_threads,
        max_new_tokens=max_new_tokens,
        verify="size",
    ) as seg:
        seg.predict(_frame(base, 10_000 + counter[0]), QUESTIONS[0])  # warm-up (sessions, allocators)
        counter[0] += 1
        for r in range(rounds):
            order = ("sequential", "overlap") if r % 2 == 0 else ("overlap", "sequential")
            for variant in order:
                counter[0] += 1
                frame = _frame(base, counter[0])
                res = seg.predict(frame, QUESTIONS[0], overlap=variant == "overlap")
                assert "sam2_encoder" in res.timings_ms, "cache hit on a new frame"
                runs[variant].append(_stages(res))
                tokens.append(len(res.raw_text))
                if variant == "overlap":
                    cached = seg.predict(frame, QUESTIONS[1])
                    assert "sam2_encoder" not in cached.timings_ms, "the second question re-encoded"
                    runs["cached"].append(_stages(cached))
    med = {v: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for v, rs in runs.items()}
    seq = med["sequential"]
    target = max(seq["reasoning"], seq["encoding"]) + seq["decoding"] + seq["pre_post"]
    return {
        "threads": threads,
        "sam2_threads": sam2_threads,
        "rounds": rounds,
        "medians_ms": med,
        "runs_ms": runs,
        "target_ms": target,
        "ratio_overlap_vs_target": med["overlap"]["total"] / target,
        "speedup_overlap_vs_sequential": seq["total"] / med["overlap"]["total"],
        "speedup_cached_vs_overlap": med["overlap"]["total"] / med["cached"]["total"],
        "raw_text_chars_median": statistics.median(tokens),
    }


def _machine() -> dict:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
    }


def _markdown(results: dict) -> str:
    lines = [
        f"# Segmenter end to end on CPU ({results['date']})",
        "",
        f"Machine: {results['machine']}. Load average at start {results['loadavg_start']}, "
        f"end {results['loadavg_end']}.",
        "",
        f"Command: `{results['command']}`",
        "",
        "Stages from the sequential runs (each stage alone). target = max(reasoning, encoding) + decoding + "
        "pre/post; ratio = overlap total / target (goal <= 1.1). Medians in ms.",
        "",
    ]
    for name, eng in results["engines"].items():
        lines += [
            f"## {name}: {eng['description']} (max_new_tokens {eng['max_new_tokens']})",
            "",
            "| threads (reasoner/sam2) | reasoning | encoding | decoding | pre/post | sequential | overlap | "
            "cached (2nd question) | target | ratio | overlap speedup | cache speedup |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in eng["settings"]:
            q, o, c = s["medians_ms"]["sequential"], s["medians_ms"]["overlap"], s["medians_ms"]["cached"]
            lines.append(
                f"| {s['threads']}/{s['sam2_threads']} | {q['reasoning']:.0f} | {q['encoding']:.0f} | "
                f"{q['decoding']:.0f} | {q['pre_post']:.0f} | {q['total']:.0f} | {o['total']:.0f} | "
                f"{c['total']:.0f} | {s['target_ms']:.0f} | {s['ratio_overlap_vs_target']:.2f} | "
                f"{s['speedup_overlap_vs_sequential']:.2f}x | {s['speedup_cached_vs_overlap']:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


DESCRIPTIONS = {
    "real": "Qwen2.5-VL-3B shapes, 2 decoder layers, INT4, input 840 (900 image tokens); SAM2.1 hiera-t 1024",
    "tiny": "tiny reasoner (2 layers, fp32, input 112); SAM2.1 hiera-t 1024",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--jobs",
        nargs="+",
        default=["real:2/2", "tiny:2/2", "tiny:2/1", "tiny:1/1", "real:2/1"],
        help="ENGINE:REASONER_THREADS/SAM2_THREADS runs in this order (ORT intra-op threads); "
        "results are written after each",
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds per tiny job")
    ap.add_argument("--real-rounds", type=int, default=2, help="rounds per real job")
    ap.add_argument("--tiny-tokens", type=int, default=200, help="max_new_tokens of the tiny reasoner")
    ap.add_argument("--real-tokens", type=int, default=120, help="max_new_tokens of the real-shaped reasoner")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="segmenter_cpu")
    args = ap.parse_args()

    from segzero_edge.world.scenes import generate_samples

    base = np.asarray(generate_samples(11, 1, 480)[0][0].image)
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "loadavg_start": os.getloadavg(),
        "engines": {},
    }
    counter = [0]
    args.out.mkdir(parents=True, exist_ok=True)
    for job in args.jobs:
        kind, spec = job.split(":")
        engine = build_engine(kind)
        tokens = args.real_tokens if kind == "real" else args.tiny_tokens
        entry = results["engines"].setdefault(
            kind,
            {"description": DESCRIPTIONS[kind], "max_new_tokens": tokens, "image": list(base.shape), "settings": []},
        )
        t, s = (int(x) for x in spec.split("/"))
        t0 = time.perf_counter()
        rounds = args.real_rounds if kind == "real" else args.rounds
        entry["settings"].append(run_setting(engine, base, t, s, rounds, tokens, counter))
        entry["settings"][-1]["loadavg_after"] = os.getloadavg()
        print(
            f"{job}: ratio {entry['settings'][-1]['ratio_overlap_vs_target']:.2f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        results["loadavg_end"] = os.getloadavg()
        (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / f"{args.name}.md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
