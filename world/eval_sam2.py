"""Mask IoU of the world's tiny SAM2 given ground-truth prompts: the torch model and the exported engine.

    python -m segzero_edge.world eval-sam2 [--checkpoint PT] [--config YAML]      (defaults: the shipped world/assets)
        [--split test] [--count 200] [--engine-dir DIR] [--threads 2]

For every (scene, query) sample of the split, the prompt is the query target's ground truth in the
Seg-Zero geometry (``world.sam2_data.gt_prompt``: tight box + the two mask points), and the
mask is compared with the target's visible mask. Two paths, each with Seg-Zero's mask choice (the
multimask output with the highest predicted IoU):

* ``torch``: the checkpoint loaded strictly into the official ``SAM2Base`` by the exporter's loader,
  run with ``SAM2ImagePredictor`` semantics (``segzero_edge.reference.torch_sam2.OfficialPredictor``);
* ``onnx``: ``segzero-edge export sam2`` of the same checkpoint (with its export-time validation),
  run by the torch-free runtime ``segzero_edge.sam2.Sam2Pipeline`` on ONNX Runtime (CPU).

Writes ``benchmarks/results/world_sam2.json`` (with every sample's IoU, so tests can compare the same
samples) and ``world_sam2.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import ASSETS

RESULTS = Path("benchmarks") / "results"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _summary(ious) -> dict:
    x = np.asarray(ious, dtype=np.float64)
    return {
        "mean_iou": float(x.mean()),
        "frac_iou_ge_0.5": float((x >= 0.5).mean()),
        "frac_iou_ge_0.9": float((x >= 0.9).mean()),
        "count": len(x),
    }


def _engine(checkpoint: Path, config: str, engine_dir: Path | None) -> tuple[Path, float | None]:
    """An engine directory exported from ``checkpoint``; an existing one is reused if its sam2 source has
    the checkpoint's sha256. Returns (dir, export seconds or None when reused)."""
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.manifest import load_manifest, sha256_file

    out = engine_dir or Path(tempfile.mkdtemp(prefix="world_sam2_")) / "engine"
    if (out / "manifest.json").is_file():
        m = load_manifest(out)
        if any(s.component == "sam2" and s.sha256 == sha256_file(checkpoint) for s in m.sources):
            return out, None
    t0 = time.perf_counter()
    export_sam2(checkpoint, out, Sam2ExportConfig(config=config), progress=True)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ASSETS / "sam2_tiny.pt"))
    parser.add_argument("--config", default=str(ASSETS / "sam2_tiny.yaml"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--count", type=int, default=None, help="first N samples of the split (default: all)")
    parser.add_argument(
        "--engine-dir",
        type=Path,
        default=None,
        help="engine directory to export into or reuse (default: a temporary one)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="world_sam2", help="results file stem (default: %(default)s)")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from segzero_edge.manifest import sha256_file
    from segzero_edge.reference.sam2_model import load_sam2_model
    from segzero_edge.reference.torch_sam2 import OfficialPredictor, segzero_choice
    from segzero_edge.sam2 import Sam2Pipeline
    from segzero_edge.world.sam2_data import SceneStore, gt_prompt

    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint)
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    store = SceneStore.from_split(args.split, args.count)
    prompts = [gt_prompt(store.target_mask(i)) for i in range(len(store))]
    gts = [store.target_mask(i) for i in range(len(store))]

    model = load_sam2_model(checkpoint, args.config)
    oracle = OfficialPredictor(model)
    torch_masks, t_torch = [], time.perf_counter()
    for i, p in enumerate(prompts):
        oracle.set_image(store.images[i])
        masks, scores, _ = oracle.predict(p.points, np.ones(2, np.float32), p.box, multimask_output=True)
        torch_masks.append(segzero_choice(masks[None], scores[None])[0][0])
    t_torch = time.perf_counter() - t_torch

    engine, export_s = _engine(checkpoint, args.config, args.engine_dir)
    runtime = Sam2Pipeline(engine, device="cpu", backend="ort", threads=args.threads)
    ort_masks, timings, t_ort = [], [], time.perf_counter()
    for i, p in enumerate(prompts):
        feats = runtime.encode(store.images[i])
        res = runtime.decode(feats, box=p.box, points=p.points[None], mask_mode="best")
        ort_masks.append(res.masks[0])
        timings.append({**feats.timings_ms, **res.timings_ms})
    t_ort = time.perf_counter() - t_ort

    iou_torch = [_iou(m, g) for m, g in zip(torch_masks, gts)]
    iou_ort = [_iou(m, g) for m, g in zip(ort_masks, gts)]
    agree = [_iou(a, b) for a, b in zip(torch_masks, ort_masks)]
    kinds = sorted(set(store.kinds))
    manifest = json.loads((engine / "manifest.json").read_text())
    result = {
        "what": "Mask IoU vs the visible ground-truth mask, ground-truth Seg-Zero prompt (tight box + 2 mask "
        "points) of each query target, Seg-Zero mask choice (best predicted IoU of 3 multimask outputs)",
        "split": args.split,
        "samples": len(store),
        "checkpoint": str(checkpoint),
        "checkpoint_bytes": checkpoint.stat().st_size,
        "checkpoint_sha256": sha256_file(checkpoint),
        "config": args.config,
        "image_size": int(model.image_size),
        "params": int(sum(p.numel() for p in model.parameters())),
        "torch": _summary(iou_torch),
        "onnx": _summary(iou_ort),
        "torch_by_kind": {k: _summary([v for v, q in zip(iou_torch, store.kinds) if q == k]) for k in kinds},
        "onnx_by_kind": {k: _summary([v for v, q in zip(iou_ort, store.kinds) if q == k]) for k in kinds},
        "torch_vs_onnx_mask_iou": {"min": float(np.min(agree)), "mean": float(np.mean(agree))},
        "export_validation": {
            k: manifest["validation"]["sam2"].get(k)
            for k in ("mask_iou_min", "runtime_mask_iou_min", "mask_choice_agreement")
        },
        "export_seconds": None if export_s is None else round(export_s, 1),
        "seconds": {
            "torch_eval": round(t_torch, 1),
            "onnx_eval": round(t_ort, 1),
            "total": round(time.perf_counter() - t_start, 1),
        },
        "onnx_ms_per_sample": {k: float(np.mean([t[k] for t in timings])) for k in timings[0]},
        "per_sample_iou": {"torch": [round(v, 6) for v in iou_torch], "onnx": [round(v, 6) for v in iou_ort]},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "threads": args.threads,
            "loadavg_start": list(load_start),
            "loadavg_end": list(os.getloadavg()),
        },
        "command": "python -m segzero_edge.world eval-sam2 " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"{args.name}.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    rows = [
        ("torch (official SAM2Base, predictor semantics)", r["torch"]),
        ("ONNX engine on segzero_edge.sam2 (ORT CPU)", r["onnx"]),
    ]
    lines = [
        f"# World tiny SAM2: mask IoU with ground-truth prompts ({r['split']} split, {r['samples']} samples)",
        "",
        f"Checkpoint `{r['checkpoint']}` ({r['checkpoint_bytes'] / 1e6:.1f} MB, {r['params'] / 1e6:.2f}M params, "
        f"config `{r['config']}`, image size {r['image_size']}). {r['what']}.",
        "",
        "| path | mean IoU | IoU >= 0.5 | IoU >= 0.9 |",
        "|---|---|---|---|",
        *(
            f"| {name} | {s['mean_iou']:.4f} | {s['frac_iou_ge_0.5']:.3f} | {s['frac_iou_ge_0.9']:.3f} |"
            for name, s in rows
        ),
        "",
        "| query kind | n | torch mean IoU | ONNX mean IoU |",
        "|---|---|---|---|",
        *(
            f"| {k} | {r['torch_by_kind'][k]['count']} | {r['torch_by_kind'][k]['mean_iou']:.4f} | "
            f"{r['onnx_by_kind'][k]['mean_iou']:.4f} |"
            for k in r["torch_by_kind"]
        ),
        "",
        f"torch vs ONNX masks: IoU min {r['torch_vs_onnx_mask_iou']['min']:.5f}, mean "
        f"{r['torch_vs_onnx_mask_iou']['mean']:.5f}. Export-time validation: {r['export_validation']}.",
        "ONNX runtime ms per sample (mean): "
        + ", ".join(f"{k} {v:.1f}" for k, v in r["onnx_ms_per_sample"].items())
        + ".",
        "",
        f"Command: `{r['command']}` on {r['date_utc']}; {r['machine']['platform']}, {r['machine']['cpus']} CPUs, "
        f"{r['machine']['threads']} threads, torch {r['machine']['torch']}, onnxruntime "
        f"{r['machine']['onnxruntime']}; load average {r['machine']['loadavg_start'][0]:.1f} at start, "
        f"{r['machine']['loadavg_end'][0]:.1f} at end (shared machine).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
