"""Export + validate every official SAM2 config (random weights in the official format) and record
export time, file sizes and the validation numbers. Writes JSON + a markdown table.

    .venv/bin/python benchmarks/sam2_export_matrix.py --out benchmarks/results     # all 8 configs
    .venv/bin/python benchmarks/sam2_export_matrix.py --configs sam2.1_hiera_t sam2_hiera_l

CI exports hiera-t only (tests/sam2); this is the evidence that every config exports and validates.
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from segzero_edge.export.builders.sam2 import build_sam2_checkpoint
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.configs:
        with tempfile.TemporaryDirectory(prefix="sam2_matrix_") as tmp:
            ckpt = build_sam2_checkpoint(Path(tmp) / "ckpt.pt", name)
            t0 = time.perf_counter()
            manifest = export_sam2(
                ckpt, Path(tmp) / "engine", Sam2ExportConfig(config=name, validation_images=1)
            )
            v = manifest.validation["sam2"]
            rows.append(
                {
                    "config": name,
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
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "torch": torch.__version__,
        "threads": args.threads,
        "load_end": list(os.getloadavg()),
        "rows": rows,
    }
    (out / "sam2_export_matrix.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# SAM2 export matrix (random weights, 1 validation image, fp32, ONNX Runtime CPU)",
        "",
        "| config | export (s) | encoder MB | max abs diff enc / dec | mask IoU min (graphs / runtime) |",
        "|---|---:|---:|---|---|",
    ]
    for r in rows:
        d = r["max_abs_diff"]
        lines.append(
            f"| {r['config']} | {r['export_seconds']:.0f} | {r['file_mb']['sam2/image_encoder.onnx']:.0f} | "
            f"{d['encoder.image_embed']:.1e} / {d['decoder.low_res_masks']:.1e} | "
            f"{r['mask_iou_min']:.6f} / {r['runtime_mask_iou_min']:.6f} |"
        )
    (out / "sam2_export_matrix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
