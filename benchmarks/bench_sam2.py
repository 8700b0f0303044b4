"""SAM2 latency: our ONNX graphs on ONNX Runtime vs the official PyTorch modules, same weights, same
machine, same thread count. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/bench_sam2.py --configs sam2.1_hiera_t --threads 2 --out benchmarks/results

Rows (median over interleaved runs, ours and theirs alternating so machine noise hits both):

* encoder (graph): ``sam2.image_encoder`` vs ``forward_image`` + ``_prepare_backbone_features`` +
  ``no_mem_embed`` (what ``SAM2ImagePredictor.set_image`` runs after preprocessing), 1024x1024 input;
* encode (end to end): ``Sam2Runtime.encode`` (numpy/PIL preprocessing + ONNX Runtime) vs the official
  preprocessing + encoder, 640x480 RGB image;
* decoder (graph), N = 1 and 8 objects: ``sam2.mask_decoder`` vs the official prompt encoder + mask
  decoder with Seg-Zero's prompt (box + 2 points, ``multimask_output=True``);
* decode (end to end), N = 1: ``Sam2Runtime.decode`` vs ``SAM2ImagePredictor.predict`` semantics + the
  Seg-Zero mask choice (both upsample to 640x480 and threshold).

Weights are random (official format, ``export.builders.sam2``): latency does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_sam2")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _interleaved(ours, theirs, runs: int, warmup: int) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        ours()
        theirs()
    a, b = [], []
    for i in range(runs):
        pair = ((ours, a), (theirs, b)) if i % 2 == 0 else ((theirs, b), (ours, a))
        for fn, sink in pair:
            t0 = time.perf_counter()
            fn()
            sink.append((time.perf_counter() - t0) * 1e3)
    return a, b


def _row(name: str, ours: list[float], theirs: list[float]) -> dict:
    mo, mt = statistics.median(ours), statistics.median(theirs)
    return {
        "stage": name,
        "ours_ms": round(mo, 2),
        "torch_ms": round(mt, 2),
        "speedup": round(mt / mo, 3),
        "ours_min_ms": round(min(ours), 2),
        "torch_min_ms": round(min(theirs), 2),
        "runs": len(ours),
    }


def bench_config(config: str, threads: int, runs: int, warmup: int, work: Path) -> dict:
    import onnxruntime
    import torch

    from segzero_edge.export.builders.sam2 import build_sam2_checkpoint
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.export.sam2_export.checkpoint import load_sam2_model
    from segzero_edge.export.sam2_export.oracle import OfficialPredictor, official_preprocess, segzero_choice
    from segzero_edge.export.sam2_export.samples import synthetic_image
    from segzero_edge.ort import create_session
    from segzero_edge.sam2 import Sam2Runtime
    from segzero_edge.sam2.prompts import build_prompts

    torch.set_num_threads(threads)
    ckpt = build_sam2_checkpoint(work / f"{config}.pt", config, seed=0)
    engine = work / f"engine-{config}"
    t0 = time.perf_counter()
    manifest = export_sam2(ckpt, engine, Sam2ExportConfig(config=config, validation_images=1))
    export_s = time.perf_counter() - t0
    model = load_sam2_model(ckpt, config)
    rt = Sam2Runtime(engine, manifest=manifest, device="cpu", backend="ort", threads=threads)
    enc_sess = create_session(engine / "sam2/image_encoder.onnx", device="cpu", threads=threads)
    dec_sess = create_session(engine / "sam2/mask_decoder.onnx", device="cpu", threads=threads)
    oracle = OfficialPredictor(model)

    rgb = synthetic_image(480, 640, seed=7)
    h, w = rgb.shape[:2]
    x = official_preprocess(rgb, model.image_size)
    x_np = x.numpy()
    rows = []

    def torch_encoder():
        with torch.inference_mode():
            oracle.set_preprocessed(x, (h, w))

    rows.append(
        _row(
            "encoder (graph)",
            *_interleaved(lambda: enc_sess.run(None, {"image": x_np}), torch_encoder, runs, warmup),
        )
    )

    def torch_encode_e2e():
        with torch.inference_mode():
            oracle.set_image(rgb)

    rows.append(
        _row(
            "encode (end to end, 640x480)",
            *_interleaved(lambda: rt.encode(rgb), torch_encode_e2e, runs, warmup),
        )
    )

    feats = rt.encode(rgb)
    oracle.set_image(rgb)
    box = np.array([0.2 * w, 0.25 * h, 0.7 * w, 0.8 * h], np.float32)
    pts = np.array([[0.4 * w, 0.5 * h], [0.5 * w, 0.6 * h]], np.float32)
    for n in (1, 8):
        boxes, points, labels = np.tile(box, (n, 1)), np.tile(pts, (n, 1, 1)), np.ones((n, 2), np.float32)
        _, (batch,) = build_prompts(
            boxes=boxes,
            points=points,
            labels=labels,
            image_wh=(w, h),
            image_size=model.image_size,
            low_res_size=model.image_size // 4,
            max_objects=16,
        )
        feeds = {**feats.feeds(), **batch.feeds()}
        concat, _ = oracle._prompts(points, labels, boxes, None)

        def torch_decoder(concat=concat):
            with torch.inference_mode():
                model.sam_mask_decoder(multimask_output=True, **oracle._decoder_inputs(concat, None))

        rows.append(
            _row(
                f"decoder (graph), N={n}",
                *_interleaved(lambda feeds=feeds: dec_sess.run(None, feeds), torch_decoder, runs, warmup),
            )
        )

    def torch_decode_e2e():
        with torch.inference_mode():
            masks, scores, _ = oracle.predict(pts, np.ones(2), box, multimask_output=True)
            segzero_choice(masks[None], scores[None])

    rows.append(
        _row(
            "decode (end to end, N=1, 640x480)",
            *_interleaved(lambda: rt.decode(feats, boxes=box, points=pts), torch_decode_e2e, runs, warmup),
        )
    )
    return {
        "config": manifest.component("sam2")["config"],
        "export_seconds": round(export_s, 1),
        "validation_mask_iou_min": manifest.validation["sam2"]["mask_iou_min"],
        "rows": rows,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def markdown(report: dict) -> str:
    lines = [
        f"# SAM2 latency: ONNX Runtime (ours) vs official PyTorch, {report['threads']} threads",
        "",
        f"Machine: {report['cpu']} ({os.cpu_count()} cores), load average at start {report['load_start']}, "
        f"end {report['load_end']}. Median of {report['runs']} interleaved runs after "
        f"{report['warmup']} warm-up runs. speedup = torch / ours.",
        "",
    ]
    for r in report["results"]:
        lines += [
            f"## {r['config']} (torch {r['torch']}, onnxruntime {r['onnxruntime']})",
            "",
            "| stage | ours (ms) | torch (ms) | speedup |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {x['stage']} | {x['ours_ms']:.1f} | {x['torch_ms']:.1f} | {x['speedup']:.2f}x |"
            for x in r["rows"]
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["sam2.1_hiera_t"], help="official SAM2 configs")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default: 2)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per stage and side (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up runs per side (default: 2)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for sam2_cpu.json / sam2_cpu.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    report = {
        "cpu": _cpu_name(),
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "load_start": [round(v, 2) for v in os.getloadavg()],
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp:
        for config in args.configs:
            log.info("benchmarking %s", config)
            report["results"].append(bench_config(config, args.threads, args.runs, args.warmup, Path(tmp)))
    report["load_end"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sam2_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "sam2_cpu.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
