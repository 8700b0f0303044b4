"""Tracking latency per frame: our tracker (ONNX Runtime, torch-free) vs the official ``SAM2VideoPredictor``
(PyTorch), same clip, same weights, same thread count. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/bench_tracker.py --configs sam2.1_hiera_t world/assets/sam2_tiny.yaml \
        --frames 16 --rounds 3 --threads 2 --out benchmarks/results/tracker_cpu

Each side runs in its own worker process (no torch in ours), and the rounds alternate the two workers so
that machine noise hits both alike. A round tracks one object through the whole clip (a JPEG folder of
``export.tracker_export.clips.synthetic_clip``, prompted with box + 2 points on frame 0):

* official: ``init_state`` (frames loaded and normalised up front, not timed), ``add_new_points_or_box``,
  then the time between consecutive frames of ``propagate_in_video`` (image encoder, memory attention,
  SAM heads, memory encoder, upsampling to the frame size);
* ours: ``Track.update`` per frame on the decoded RGB frame (its preprocessing included: a camera frame has
  to be resized and normalised, which the official predictor does for the whole clip before tracking).

Per frame after the prompt frame; "full bank" is frames >= 7, where both attend to 7 memories and up to 16
pointers (the steady state of a stream). Weights are random (latency does not depend on them).
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

from segzero_edge.evaluation.latency import cpu_model, cpu_simd

log = logging.getLogger("bench_tracker")
FULL_BANK = 7


def _prompts(clip, n: int) -> list[dict]:
    """The clip's target (box + 2 points), then n - 1 boxes around other parts of the frame."""
    h, w = clip.frames[0].shape[:2]
    prompts = [{"box": list(clip.box), "points": [list(p) for p in clip.points], "labels": [1, 1]}]
    for i in range(1, n):
        x = (0.15 + 0.25 * i) % 0.8 * w
        prompts.append({"box": [x, 0.1 * h, x + 0.2 * w, 0.4 * h], "points": [[x + 0.1 * w, 0.25 * h]], "labels": [1]})
    return prompts


def worker_ours(engine: Path, folder: Path, threads: int, device: str = "cpu") -> list[float]:
    from PIL import Image

    from segzero_edge import Segmenter

    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem))]
    prompts = json.loads((folder / "prompts.json").read_text())
    points = [np.asarray(p["points"], np.float32) for p in prompts]
    with Segmenter(engine, device=device, threads=threads) as seg:
        track = seg.track(frames[0], box=[p["box"] for p in prompts], points=points, reason_after_lost=0)
        times = []
        for frame in frames[1:]:
            t0 = time.perf_counter()
            track.update(frame)
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def worker_torch(ckpt: Path, config: str, folder: Path, threads: int, device: str = "cpu") -> list[float]:
    import warnings

    import torch

    from segzero_edge.reference.sam2_model import load_sam2_model

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message=".*cannot import name '_C'")
    predictor = load_sam2_model(ckpt, config, video=True).to(device)
    prompts = json.loads((folder / "prompts.json").read_text())
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        for obj_id, prompt in enumerate(prompts):
            predictor.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, **prompt)
        times, t0 = [], None
        for frame_idx, _, masks in predictor.propagate_in_video(state):
            if device != "cpu":
                masks.cpu()  # wait for the GPU, as ours returns host masks
            now = time.perf_counter()
            if frame_idx >= 1:  # frame 0 is the prompt frame, consolidated before the first yield
                times.append((now - t0) * 1e3)
            t0 = now
    return times


def _run_worker(side: str, args, engine: Path, ckpt: Path, config: str, folder: Path) -> list[float]:
    cmd = [sys.executable, __file__, "--worker", side, "--engine", str(engine), "--ckpt", str(ckpt)]
    cmd += ["--worker-config", config, "--folder", str(folder), "--threads", str(args.threads)]
    cmd += ["--device", args.device]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_config(config: str, args, work: Path) -> dict:
    from PIL import Image

    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.export.tracker_export.export import export_tracker
    from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint
    from segzero_edge.tracker.clips import synthetic_clip

    name = Path(config).stem if config.endswith(".yaml") else config
    root = work / name
    root.mkdir(parents=True, exist_ok=True)
    ckpt = root / "sam2.pt"
    engine = root / "engine"
    if not (engine / "manifest.json").exists():
        build_sam2_checkpoint(ckpt, config, seed=0)
        export_sam2(ckpt, engine, Sam2ExportConfig(config=config, validation_images=1))
    if not (engine / "tracker").is_dir():  # also after an export whose tracker step failed
        export_tracker(ckpt, engine, config, validation_frames=args.validation_frames)
    folder = root / "clip"
    folder.mkdir(exist_ok=True)
    clip = synthetic_clip(args.frames, seed=0)
    for i, f in enumerate(clip.frames):
        Image.fromarray(f).save(folder / f"{i}.jpg", quality=95)
    (folder / "prompts.json").write_text(json.dumps(_prompts(clip, args.objects)))
    runs: dict[str, list[list[float]]] = {"official": [], "ours": []}
    for r in range(args.rounds):
        for side in ("official", "ours") if r % 2 == 0 else ("ours", "official"):
            worker = "torch" if side == "official" else "ours"
            runs[side].append(_run_worker(worker, args, engine, ckpt, config, folder))
            log.info("%s round %d %s: median %.0f ms", name, r, side, statistics.median(runs[side][-1]))
    rows = {}
    for side, per_round in runs.items():
        per_frame = [{1 + i: t for i, t in enumerate(times)} for times in per_round]  # times[i]: frame i + 1
        frames = sorted(set.intersection(*(set(d) for d in per_frame)))
        steady = [d[f] for d in per_frame for f in frames if f >= FULL_BANK]
        allf = [d[f] for d in per_frame for f in frames if f >= 2]
        rows[side] = {
            "median_ms": statistics.median(allf),
            "full_bank_median_ms": statistics.median(steady),
            "full_bank_p90_ms": float(np.percentile(steady, 90)),
            "fps_full_bank": 1e3 / statistics.median(steady),
            "per_round_ms": per_round,
        }
    rows["speedup_full_bank"] = rows["official"]["full_bank_median_ms"] / rows["ours"]["full_bank_median_ms"]
    return {"config": config, "frames": args.frames, "objects": args.objects, **rows}


def predict_vs_track(engine: Path, text: str, frames: int, threads: int) -> dict:
    """Frames per second of ``predict`` on every frame against ``track`` (reason once, then ``update``) on
    one engine with a reasoner, SAM2 and the tracker, same clip (scaled to the engine's SAM2 input)."""
    from segzero_edge import Segmenter
    from segzero_edge.tracker.clips import synthetic_clip

    clip = synthetic_clip(frames, seed=0)
    with Segmenter(engine, device="cpu", threads=threads, cache_size=0) as seg:
        predict_ms = []
        for frame in clip.frames[1:]:
            t0 = time.perf_counter()
            seg.predict(frame, text)
            predict_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        track = seg.track(clip.frames[0], text, reason_after_lost=0)
        first_ms = (time.perf_counter() - t0) * 1e3
        track_ms = []
        for frame in clip.frames[1:]:
            t0 = time.perf_counter()
            track.update(frame)
            track_ms.append((time.perf_counter() - t0) * 1e3)
    p, t = statistics.median(predict_ms), statistics.median(track_ms)
    return {
        "engine": str(engine),
        "text": text,
        "frames": frames,
        "predict_ms_p50": p,
        "track_first_frame_ms": first_ms,
        "track_update_ms_p50": t,
        "predict_fps": 1e3 / p,
        "track_fps": 1e3 / t,
        "track_over_predict": p / t,
    }


def markdown(report: dict) -> str:
    cpu = report["cpu"] + (f"; {report['simd']}" if report.get("simd") else "")
    lines = [f"# Tracking latency per frame, {report['device']} ({cpu}, {report['threads']} threads)", ""]
    if report["results"]:
        lines += [
            f"{report['frames']}-frame seeded clip, {report['objects']} object(s), {report['rounds']} interleaved "
            "rounds per side (the official predictor runs each object on its own, ours all in one batch); "
            "full bank = frames >= 7. Command: `" + report["command"] + "`",
            "",
            "| config | official SAM2VideoPredictor ms (full bank, p50) | ours ms (full bank, p50) | speed-up | "
            "ours fps | official p50 all frames | ours p50 all frames |",
            "|---|---|---|---|---|---|---|",
        ]
    for r in report["results"]:
        o, u = r["official"], r["ours"]
        lines.append(
            f"| {r['config']} | {o['full_bank_median_ms']:.0f} | {u['full_bank_median_ms']:.0f} | "
            f"{r['speedup_full_bank']:.2f}x | {u['fps_full_bank']:.1f} | {o['median_ms']:.0f} | {u['median_ms']:.0f} |"
        )
    pt = report.get("predict_vs_track")
    if pt:
        lines += [
            "",
            f"predict on every frame vs track (reason once, then update), {pt['engine']}, {pt['frames']} frames: "
            f"predict {pt['predict_ms_p50']:.0f} ms ({pt['predict_fps']:.1f} fps), track update "
            f"{pt['track_update_ms_p50']:.0f} ms ({pt['track_fps']:.1f} fps): {pt['track_over_predict']:.0f}x; the "
            f"first frame (reasoning + prompt) {pt['track_first_frame_ms']:.0f} ms.",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", default=["sam2.1_hiera_t"])
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--objects", type=int, default=1, help="objects tracked together (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, or cuda (official on torch CUDA, ours on CUDA/TensorRT)")
    p.add_argument("--validation-frames", type=int, default=8, help="export-time tracker validation clip")
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    p.add_argument(
        "--predict-engine",
        type=Path,
        default=None,
        help="also compare predict per frame with tracking on this engine (reasoner + sam2 + tracker)",
    )
    p.add_argument("--text", default="the bright disc", help="the instruction for --predict-engine")
    p.add_argument("--work", type=Path, default=None, help="keep checkpoints and engines here (default: a temp dir)")
    p.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--engine", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-config", help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "ours":
        print(json.dumps(worker_ours(args.engine, args.folder, args.threads, args.device)))
        return 0
    if args.worker == "torch":
        print(json.dumps(worker_torch(args.ckpt, args.worker_config, args.folder, args.threads, args.device)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = [bench_config(c, args, work) for c in args.configs] if args.configs else []
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "simd": cpu_simd(),
        "device": args.device,
        "threads": args.threads,
        "frames": args.frames,
        "objects": args.objects,
        "rounds": args.rounds,
        "command": "python benchmarks/bench_tracker.py " + " ".join(sys.argv[1:]),
        "results": results,
    }
    if args.predict_engine:
        report["predict_vs_track"] = predict_vs_track(args.predict_engine, args.text, args.frames, args.threads)
    text = markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
