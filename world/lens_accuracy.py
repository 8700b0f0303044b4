"""The world's LENS table: masks prompted by hidden states against masks prompted by box and points.

    python -m segzero_edge.world lens-accuracy [--head PT] [--count 200] [--work-dir .cache/world_lens]

The shipped LENS head (``world/assets/lens_head.safetensors``, ``world.lens_head``) on the frozen world
reasoner is assembled into a checkpoint in LENS's published layout and exported with ``export lens`` twice
(reasoner fp32 and INT4 with the world's block size and INT8 layers; every context variant in each; each
export validated against the torch reference). Every row runs over the world's test split (200 samples,
greedy) through ``segzero_edge.evaluation.evaluate``:

* ``box + points``: the world's Seg-Zero-family engine (``world.demo.export_world_engine``), unconstrained:
  the reasoner's own prompt, its answer's box and points into the stock world SAM2 (as ``world_accuracy``);
* ``LENS torch fp32``: the torch reference (``export/lens_export/reference.py``), the whole request in PyTorch;
* ``LENS ONNX ...``: ``Segmenter.predict`` on the LENS engines, with the fp32, INT8 or INT4 context graph.

Besides gIoU / cIoU: the share of samples whose text holds a box (LENS's rule; the mask never needs it),
mean latency, and the per-stage means of the ONNX rows. Writes ``benchmarks/results/world_lens.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from segzero_edge.evaluation.latency import cpu_model

from . import ASSETS
from .lens_head import HEAD_FILE, WORLD_SAM2, WORLD_SAM2_CONFIG

RESULTS = Path("benchmarks") / "results"
MAX_NEW_TOKENS = 320

#: (row name, path: "segzero" | "lens_torch" | "lens", reasoner precision, context precision)
ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("box + points, ONNX fp32", "segzero", "fp32", None),
    ("box + points, ONNX INT4", "segzero", "int4", None),
    ("LENS torch fp32 (reference)", "lens_torch", "fp32", "fp32"),
    ("LENS ONNX fp32", "lens", "fp32", "fp32"),
    ("LENS ONNX fp32, INT8 context", "lens", "fp32", "int8"),
    ("LENS ONNX fp32, INT4 context", "lens", "fp32", "int4"),
    ("LENS ONNX INT4", "lens", "int4", "fp32"),
    ("LENS ONNX INT4, INT4 context", "lens", "int4", "int4"),
)


class ReferencePredictor:
    """``LensReference`` with ``Segmenter.predict``'s signature (for ``evaluate``)."""

    def __init__(self, checkpoint: Path, max_new_tokens: int) -> None:
        from segzero_edge.export.lens_export.reference import LensReference
        from segzero_edge.prompt import read_checkpoint_meta

        self.ref = LensReference(
            checkpoint,
            input_size=read_checkpoint_meta(checkpoint)["input_size"],
            template="cot",
            sam2_config=str(WORLD_SAM2_CONFIG),
        )
        self.max_new_tokens = max_new_tokens

    def predict(self, image: np.ndarray, text: str):
        from segzero_edge.answer.lens import decode_lens_answer
        from segzero_edge.types import Segmentation

        r = self.ref.predict(image, text, max_new_tokens=self.max_new_tokens)
        found = bool(r.mask.any())
        answer = decode_lens_answer(r.text, (image.shape[1], image.shape[0]), self.ref.checkpoint.preprocess.input_size)
        return Segmentation(
            mask=r.mask, found=found, raw_text=r.text, answer=answer, error=None if found else "empty mask"
        )


def export_lens_engine(out: Path, checkpoint: Path, weights: str) -> tuple[Path, float]:
    """The world LENS engine at ``out`` (reasoner ``weights``, every context variant, the world SAM2's tracker),
    kept when its recorded checkpoint sha256 and precision match."""
    import time

    from segzero_edge.export.lens_export.export import LensExportConfig, export_lens
    from segzero_edge.manifest import load_manifest, sha256_tree

    from .demo import _reasoner_config

    if (out / "manifest.json").is_file():
        m = load_manifest(out, verify="size")
        src = {s.component: s.sha256 for s in m.sources}
        same = src.get("lens") == sha256_tree(checkpoint) and m.component("reasoner")["weights"] == weights
        if same and m.has_component("tracker"):
            return out, 0.0
    t0 = time.perf_counter()
    cfg = LensExportConfig(
        reasoner=_reasoner_config(weights),
        template="cot",
        sam2_config=str(WORLD_SAM2_CONFIG),
        stock_sam2=WORLD_SAM2,
        validation_images=3,
        validation_tokens=64,
    )
    export_lens(checkpoint, out, cfg)
    return out, time.perf_counter() - t0


def run_row(name: str, predictor, split_dir: Path, count: int | None) -> dict:
    from tqdm.auto import tqdm

    from segzero_edge.evaluation import evaluate

    bar = tqdm(total=count or 200, desc=name, unit="sample")
    try:
        report = evaluate(predictor, split_dir, limit=count, on_sample=lambda _: bar.update())
    finally:
        bar.close()
    return {
        "samples": len(report.samples),
        "giou": report.scores.giou,
        "ciou": report.scores.ciou,
        "found": float(np.mean([s.pred_pixels > 0 for s in report.samples])),
        "latency_ms_mean": float(np.mean([s.latency_ms for s in report.samples])),
        "per_sample_iou": [round(float(s.iou), 6) for s in report.samples],
    }


class _StageMeans:
    """Wraps a ``Segmenter``: ``predict`` as usual, keeping the mean of each stage's milliseconds and whether
    the text held a box."""

    def __init__(self, seg) -> None:
        self.seg, self.sums, self.n, self.boxes = seg, {}, 0, 0

    def predict(self, image, text):
        res = self.seg.predict(image, text)
        self.n += 1
        self.boxes += int(res.answer is not None and res.answer.ok)
        for k, v in res.timings_ms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        return res

    def means(self) -> dict[str, float]:
        return {k: round(v / max(self.n, 1), 2) for k, v in self.sums.items()}


def write_markdown(result: dict, path: Path) -> None:
    rows = result["rows"]
    lines = [
        "# World: LENS hidden-state prompting vs box-and-points prompting (test split)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cpus']} CPUs, {result['threads']} thread(s)  ",
        f"Models: reasoner `{result['reasoner']}` (frozen), LENS head `{result['head']}` (LENS's CoT prompt), "
        f"SAM2 `{result['sam2']}`; greedy, max_new_tokens {result['max_new_tokens']}",
        "",
        "| path | samples | gIoU | cIoU | mask found | text has a box | ms / sample |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        box = f"{r['text_box_rate']:.3f}" if r.get("text_box_rate") is not None else "-"
        lines.append(
            f"| {name} | {r['samples']} | {r['giou']:.3f} | {r['ciou']:.3f} | {r['found']:.3f} | {box} | "
            f"{r['latency_ms_mean']:.0f} |"
        )
    lines += ["", "Mean milliseconds per stage (ONNX rows):", ""]
    for name, r in rows.items():
        if r.get("stages_ms"):
            lines.append(f"* {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items()))
    lines += ["", f"Export seconds (0 = reused): {result['export_seconds']}", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--head", type=Path, default=HEAD_FILE, help="the trained LENS head (safetensors)")
    parser.add_argument("--count", type=int, default=None, help="first N test samples (default: all 200)")
    parser.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/world_lens"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="world_lens", help="results file stem (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import shutil

    from segzero_edge import Segmenter
    from segzero_edge.manifest import sha256_file
    from segzero_edge.world.dataset import write_split

    from .accuracy import _shown
    from .demo import export_world_engine
    from .lens_head import build_world_lens_checkpoint

    data = args.work_dir / "data"
    if not (data / "test" / "index.json").is_file():
        write_split("test", data)
    checkpoint = args.work_dir / "checkpoint"
    shutil.rmtree(checkpoint, ignore_errors=True)
    build_world_lens_checkpoint(checkpoint, head=args.head)
    chosen = range(len(ROWS)) if args.rows is None else [int(i) for i in args.rows.split(",")]
    engines, export_s, rows = {}, {}, {}
    for i in chosen:
        name, path, weights, context = ROWS[i]
        row: dict
        if path == "lens_torch":
            row = run_row(name, ReferencePredictor(checkpoint, MAX_NEW_TOKENS), data / "test", args.count)
        else:
            key = f"{path}_{weights}"
            if key not in engines:
                if path == "segzero":
                    engines[key], s = export_world_engine(
                        args.work_dir / f"engine_{key}", weights, sam2=WORLD_SAM2, sam2_config=WORLD_SAM2_CONFIG
                    )
                else:
                    engines[key], s = export_lens_engine(args.work_dir / f"engine_{key}", checkpoint, weights)
                export_s[key] = round(s, 1)
            extra = {"lens_context": context} if context else {"constrained": False}
            with Segmenter(
                engines[key], device="cpu", threads=args.threads, max_new_tokens=MAX_NEW_TOKENS, **extra
            ) as seg:
                timed = _StageMeans(seg)
                row = run_row(name, timed, data / "test", args.count)
            row["stages_ms"] = timed.means()
            row["text_box_rate"] = timed.boxes / max(timed.n, 1)
        rows[name] = row
        print(f"{name}: gIoU {row['giou']:.3f} cIoU {row['ciou']:.3f} found {row['found']:.3f}", flush=True)
    import onnxruntime
    import torch

    result = {
        "what": "gIoU / cIoU of LENS-style masks (hidden-state prompt) against box-and-points masks in the world",
        "command": " ".join(
            ["python -m segzero_edge.world lens-accuracy", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "reasoner": _shown(ASSETS / "reasoner"),
        "head": _shown(args.head),
        "head_sha256": sha256_file(args.head),
        "sam2": _shown(WORLD_SAM2),
        "threads": args.threads,
        "max_new_tokens": MAX_NEW_TOKENS,
        "export_seconds": export_s,
        "rows": rows,
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.out_dir / f"{args.name}.md")
    print(f"wrote {args.out_dir / (args.name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
