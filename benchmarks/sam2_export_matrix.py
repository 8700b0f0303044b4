"""Export + validate every official SAM2 config (random weights in the official format) and record
export time, file sizes and the validation numbers. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/sam2_export_matrix.py --out benchmarks/results     # all 8 configs
    .venv/bin/python benchmarks/sam2_export_matrix.py --configs sam2.1_hiera_t sam2_hiera_l
    .venv/bin/python benchmarks/sam2_export_matrix.py --configs sam2_hiera_t --tracker-frames 8   # + the tracker

CI exports hiera-t only (tests/sam2); this is the evidence that every config exports and validates.
Rows of configs not re-run are kept from the existing JSON (each row carries the date it was measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> int:
    from segzero_edge.sam2.configs import SAM2_CONFIGS

    names = [c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=names, help="official configs (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for sam2_export_matrix.json/.md")
    parser.add_argument(
        "--tracker-frames",
        type=int,
        default=0,
        help="also export the tracker, validated against SAM2VideoPredictor on a clip of this many frames (>= 8)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.export.tracker_export.export import export_tracker
    from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.configs:
        with tempfile.TemporaryDirectory(prefix="sam2_matrix_") as tmp:
            ckpt = build_sam2_checkpoint(Path(tmp) / "ckpt.pt", name)
            t0 = time.perf_counter()
            manifest = export_sam2(ckpt, Path(tmp) / "engine", Sam2ExportConfig(config=name, validation_images=1))
            v = manifest.validation["sam2"]
            rows.append(
                {
                    "config": name,
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "load_1min": round(os.getloadavg()[0], 2),
                    "export_seconds": round(time.perf_counter() - t0, 1),
                    "file_mb": {f.path: round(f.size / 1e6, 1) for f in manifest.files},
                    **{
                        k: v[k]
                        for k in (
                            "max_abs_diff",
                            "reference_max_abs",
                            "mask_iou_min",
                            "runtime_mask_iou_min",
                            "mask_choice_agreement",
                            "runtime_preprocess_max_abs_diff",
                            "reference_foreground_fraction",
                        )
                    },
                }
            )
            if args.tracker_frames:
                t0 = time.perf_counter()
                tm = export_tracker(ckpt, Path(tmp) / "engine", name, validation_frames=args.tracker_frames)
                tv = tm.validation["tracker"]
                keys = ("frames", "objects", "mask_iou_min", "mask_iou_mean", "object_score_max_abs_diff")
                rows[-1]["tracker"] = {**{k: tv[k] for k in keys}, "seconds": round(time.perf_counter() - t0, 1)}
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
        _write(rows, names, args, torch.__version__)  # after each config: an interrupted run keeps its rows
    return 0


def _write(rows: list[dict], names: list[str], args, torch_version: str) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = out / "sam2_export_matrix.json"
    if old.exists():  # keep the rows of configs not re-run, in the official order
        fresh = {r["config"]: r for r in rows}
        kept = {r["config"]: r for r in json.loads(old.read_text()).get("rows", [])}
        merged = {**kept, **fresh}
        rows = [merged[n] for n in names if n in merged] + [r for n, r in merged.items() if n not in names]
    report = {
        "torch": torch_version,
        "threads": args.threads,
        "load_end": list(os.getloadavg()),
        "rows": rows,
    }
    (out / "sam2_export_matrix.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# SAM2 export matrix (random weights, 1 validation image, fp32, ONNX Runtime CPU)",
        "",
        "Command: `.venv/bin/python benchmarks/sam2_export_matrix.py [--configs ...]`; export time includes the "
        "validation and depends on the machine's load (shared 2-core machine).",
        "",
        "| config | measured | export (s) | encoder MB | max abs diff enc / dec | mask IoU min (graphs / runtime) "
        "| tracker vs SAM2VideoPredictor: frames, min mask IoU |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in rows:
        d = r["max_abs_diff"]
        lines.append(
            f"| {r['config']} | {r.get('date', 'before 2026-11-22')} | {r['export_seconds']:.0f} | "
            f"{r['file_mb']['sam2/image_encoder.onnx']:.0f} | "
            f"{d['encoder.image_embed']:.1e} / {d['decoder.low_res_masks']:.1e} | "
            f"{r['mask_iou_min']:.6f} / {r['runtime_mask_iou_min']:.6f} | "
            + (f"{r['tracker']['frames']}, {r['tracker']['mask_iou_min']:.6f} |" if "tracker" in r else "not run |")
        )
    (out / "sam2_export_matrix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
