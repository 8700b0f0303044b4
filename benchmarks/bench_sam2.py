"""SAM2 latency: our ONNX graphs on ONNX Runtime vs the official PyTorch modules, same weights, same
machine, same thread count. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/bench_sam2.py --configs sam2.1_hiera_t --threads 2 --out benchmarks/results

Each side runs in its own worker process (no torch in the ONNX Runtime worker), so the two thread
pools never compete; rounds alternate the two workers so machine noise hits both sides alike. Stages:

* encoder (graph): ``sam2.image_encoder`` vs ``forward_image`` + ``_prepare_backbone_features`` +
  ``no_mem_embed`` (what ``SAM2ImagePredictor.set_image`` runs after preprocessing), 1024x1024 input;
* encode (end to end): ``Sam2Pipeline.encode`` (numpy/PIL preprocessing + ONNX Runtime) vs the official
  preprocessing + encoder, 640x480 RGB image;
* decoder (graph), N = 1 and 8 objects: ``sam2.mask_decoder`` vs the official prompt encoder + mask
  decoder on Seg-Zero's prompt (box + 2 points, ``multimask_output=True``);
* decode (end to end), N = 1: ``Sam2Pipeline.decode`` vs ``SAM2ImagePredictor.predict`` semantics + the
  Seg-Zero mask choice (both upsample to 640x480 and threshold).

Weights are random (official format, from ``export.builders.sam2``): latency does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segzero_edge.evaluation.latency import cpu_model

log = logging.getLogger("bench_sam2")
H, W = 480, 640
STAGES = (
    "encoder (graph)",
    "encode (end to end, 640x480)",
    "decoder (graph), N=1",
    "decoder (graph), N=8",
    "decode (end to end, N=1, 640x480)",
)


def _image() -> np.ndarray:
    from segzero_edge.sam2.trt_check import check_image

    return check_image(H, W, seed=7)


def _prompt(n: int):
    box = np.array([0.2 * W, 0.25 * H, 0.7 * W, 0.8 * H], np.float32)
    pts = np.array([[0.4 * W, 0.5 * H], [0.5 * W, 0.6 * H]], np.float32)
    return np.tile(box, (n, 1)), np.tile(pts, (n, 1, 1)), np.ones((n, 2), np.float32)


def _time(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


ENCODER_STAGES = STAGES[:2]


def worker_ours(
    engine: Path, threads: int, runs: int, warmup: int, stages: tuple[str, ...] = STAGES
) -> dict[str, list[float]]:
    """ONNX Runtime side: the engine directory's graphs and the torch-free runtime.

    The graph stages use ``segzero_edge.ort.SessionFactory``, the session factory of the runtime (same
    providers, threads and graph-optimization settings as ``Sam2Pipeline``)."""
    from segzero_edge.ort import SessionFactory
    from segzero_edge.sam2 import Sam2Pipeline
    from segzero_edge.sam2.contract import IMAGE
    from segzero_edge.sam2.host import build_prompts, preprocess

    rt = Sam2Pipeline(engine, device="cpu", backend="ort", threads=threads)
    s = rt.settings
    sessions = SessionFactory("cpu", threads=threads)
    enc = sessions.create(engine / rt.encoder_spec.file)
    dec = sessions.create(engine / rt.decoder_spec.file)
    rgb = _image()
    x = preprocess(rgb, s.image_size, s.pixel_mean, s.pixel_std)
    res = {}
    if STAGES[0] in stages:
        res[STAGES[0]] = _time(lambda: enc.run(None, {IMAGE: x}), runs, warmup)
    if STAGES[1] in stages:
        res[STAGES[1]] = _time(lambda: rt.encode(rgb), runs, warmup)
    feats = rt.encode(rgb)
    for n, stage in ((1, STAGES[2]), (8, STAGES[3])):
        boxes, points, labels = _prompt(n)
        _, (batch,) = build_prompts(
            box=boxes,
            points=points,
            labels=labels,
            image_wh=(W, H),
            image_size=s.image_size,
            low_res_size=s.low_res_size,
            max_objects=16,
        )
        feeds = {**feats.feeds(), **batch.feeds()}
        res[stage] = _time(lambda feeds=feeds: dec.run(None, feeds), runs, warmup)
    boxes, points, labels = _prompt(1)
    res[STAGES[4]] = _time(lambda: rt.decode(feats, box=boxes[0], points=points[0]), runs, warmup)
    return res


def worker_torch(
    checkpoint: Path, config: str, threads: int, runs: int, warmup: int, stages: tuple[str, ...] = STAGES
) -> dict[str, list[float]]:
    """PyTorch side: the official model's modules with SAM2ImagePredictor's logic."""
    import torch

    from segzero_edge.reference.sam2_model import load_sam2_model
    from segzero_edge.reference.torch_sam2 import OfficialPredictor, official_preprocess, segzero_choice

    torch.set_num_threads(threads)
    model = load_sam2_model(checkpoint, config)
    oracle = OfficialPredictor(model)
    rgb = _image()
    x = official_preprocess(rgb, model.image_size)
    with torch.inference_mode():
        res = {}
        if STAGES[0] in stages:
            res[STAGES[0]] = _time(lambda: oracle.set_preprocessed(x, (H, W)), runs, warmup)
        if STAGES[1] in stages:
            res[STAGES[1]] = _time(lambda: oracle.set_image(rgb), runs, warmup)
        else:
            oracle.set_preprocessed(x, (H, W))
        for n, stage in ((1, STAGES[2]), (8, STAGES[3])):
            boxes, points, labels = _prompt(n)
            concat, _ = oracle._prompts(points, labels, boxes, None)
            res[stage] = _time(
                lambda concat=concat: model.sam_mask_decoder(
                    multimask_output=True, **oracle._decoder_inputs(concat, None)
                ),
                runs,
                warmup,
            )
        boxes, points, labels = _prompt(1)

        def decode():
            masks, scores, _ = oracle.predict(points[0], labels[0], boxes[0], multimask_output=True)
            segzero_choice(masks[None], scores[None])

        res[STAGES[4]] = _time(decode, runs, warmup)
    return res


def _run_worker(side: str, args, engine: Path, ckpt: Path, config: str) -> dict[str, list[float]]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--engine",
        str(engine),
        "--checkpoint",
        str(ckpt),
        "--configs",
        config,
        "--threads",
        str(args.threads),
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--stages",
        args.stages,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_config(config: str, args, work: Path) -> dict:
    import onnxruntime
    import torch

    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.manifest import load_manifest
    from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint

    ckpt, engine = work / f"{config}.pt", work / f"engine-{config}"
    if args.work and (engine / "manifest.json").exists() and ckpt.exists():  # --work: reuse an earlier export
        log.info("reusing %s (exported earlier from %s)", engine, ckpt)
        manifest = load_manifest(engine, verify="full")
    else:
        ckpt = build_sam2_checkpoint(ckpt, config, seed=0)
        manifest = export_sam2(ckpt, engine, Sam2ExportConfig(config=config, validation_images=1))
    samples: dict[str, dict[str, list[float]]] = {"ours": {}, "torch": {}}
    per_round: dict[str, dict[str, list[float]]] = {"ours": {}, "torch": {}}  # median of each round
    loads = []
    for r in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        for side in ("ours", "torch") if r % 2 == 0 else ("torch", "ours"):
            log.info("%s: round %d, %s (load %.2f)", config, r + 1, side, os.getloadavg()[0])
            for stage, ms in _run_worker(side, args, engine, ckpt, config).items():
                samples[side].setdefault(stage, []).extend(ms)
                per_round[side].setdefault(stage, []).append(statistics.median(ms))
    rows = []
    for stage in stage_names(args.stages):
        a, b = samples["ours"][stage], samples["torch"][stage]
        mo, mt = statistics.median(a), statistics.median(b)
        ratios = [t / o for o, t in zip(per_round["ours"][stage], per_round["torch"][stage])]
        rows.append(
            {
                "stage": stage,
                "ours_ms": round(mo, 2),
                "torch_ms": round(mt, 2),
                "speedup": round(mt / mo, 3),
                "speedup_per_round": [round(x, 3) for x in ratios],
                "ours_min_ms": round(min(a), 2),
                "torch_min_ms": round(min(b), 2),
                "ours_p25_p75_ms": [round(float(np.percentile(a, q)), 2) for q in (25, 75)],
                "torch_p25_p75_ms": [round(float(np.percentile(b, q)), 2) for q in (25, 75)],
                "samples": len(a),
            }
        )
    return {
        "config": manifest.component("sam2")["config"],
        "load_per_round": loads,
        "rows": rows,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "validation_mask_iou_min": manifest.validation["sam2"]["mask_iou_min"],
    }


def stage_names(which: str) -> tuple[str, ...]:
    """``--stages``: ``all`` or ``decoder`` (skips the two encoder stages, which take seconds per run)."""
    return STAGES if which == "all" else tuple(st for st in STAGES if st not in ENCODER_STAGES)


def markdown(report: dict) -> str:
    lines = [
        f"# SAM2 latency: ONNX Runtime (ours) vs official PyTorch, {report['threads']} threads",
        "",
        f"Date {report['date']}. Command: `{report['command']}`.",
        "",
        f"Machine: {report['cpu']} ({report['cores']} cores, shared), load average (1/5/15 min) at start "
        f"{report['load_start']}, end {report['load_end']}. Each side in its own process; {report['rounds']} "
        f"alternating rounds of {report['runs']} timed runs (after {report['warmup']} warm-up); median of all "
        "runs. speedup = torch / ours; the per-round column is torch / ours of each round's medians (the "
        f"spread). ONNX Runtime sessions: {report['ort_session']}.",
        "",
    ]
    if report.get("stages") == "decoder":
        lines += ["Decoder stages only (`--stages decoder`): the encoder stages were not run here.", ""]
    for r in report["results"]:
        lines += [
            f"## {r['config']} (torch {r['torch']}, onnxruntime {r['onnxruntime']})",
            "",
            f"1-min load average at the start of each round: {r['load_per_round']}.",
            "",
            "| stage | ours (ms) | torch (ms) | speedup | per round (min..max) |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {x['stage']} | {x['ours_ms']:.1f} | {x['torch_ms']:.1f} | {x['speedup']:.2f}x | "
            f"{min(x['speedup_per_round']):.2f}..{max(x['speedup_per_round']):.2f}x |"
            for x in r["rows"]
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["sam2.1_hiera_t"], help="official SAM2 configs")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default: 2)")
    parser.add_argument("--runs", type=int, default=4, help="timed runs per stage, side and round (default: 4)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up runs per stage and worker (default: 1)")
    parser.add_argument(
        "--stages", choices=("all", "decoder"), default="all", help="all stages, or the decoder ones only"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for sam2_cpu.json / sam2_cpu.md")
    parser.add_argument(
        "--work", help="keep checkpoints and exported engines here and reuse them on the next run (default: temp)"
    )
    parser.add_argument("--name", default="sam2_cpu", help="basename of the result files (default: sam2_cpu)")
    parser.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "ours":
        stages = stage_names(args.stages)
        print(json.dumps(worker_ours(Path(args.engine), args.threads, args.runs, args.warmup, stages)))
        return 0
    if args.worker == "torch":
        print(
            json.dumps(
                worker_torch(
                    Path(args.checkpoint),
                    args.configs[0],
                    args.threads,
                    args.runs,
                    args.warmup,
                    stage_names(args.stages),
                )
            )
        )
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from segzero_edge.ort import CPU_DISABLED_OPTIMIZERS

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "ort_session": f"segzero_edge.ort.SessionFactory('cpu', threads={args.threads}): intra-op "
        f"threads {args.threads}, inter-op 1, default spinning, graph optimization ORT_ENABLE_ALL without "
        f"{', '.join(CPU_DISABLED_OPTIMIZERS)}",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "stages": args.stages,
        "runs": args.runs,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "load_start": [round(v, 2) for v in os.getloadavg()],
        "results": [],
    }
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp:
        for config in args.configs:
            report["results"].append(bench_config(config, args, Path(args.work or tmp)))
    report["load_end"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
