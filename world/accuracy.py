"""Accuracy of the deployment path on the small world's test split: one table.

    python -m segzero_edge.world accuracy [--reasoner DIR] [--sam2 PT] [--sam2-config YAML] [--count 200]
        [--work-dir .cache/world_accuracy] [--compare JSON]      (defaults: the shipped world/assets)

The shipped world models (or any reasoner checkpoint + SAM2 checkpoint) are exported three times with
``world.demo.export_world_engine`` (the ``make demo`` export: reasoner fp32, INT8, INT4 with block size
``WORLD_BLOCK_SIZE`` and the first decoder layer at INT8, ``WORLD_INT8_LAYERS``; the same SAM2 in each;
every export validated against torch), and every row runs
``Segmenter.predict`` over the test split through ``segzero_edge.evaluation.evaluate`` (gIoU / cIoU per
spec §7; an unparsed answer is a miss):

* ``torch fp32``: ``backend="torch"`` (transformers generate + the official SAM2): the reference.
* ``ONNX fp32``, ``INT8``, ``INT4``: ONNX Runtime, CPU, both stages.
* each without and with the token-level answer constraint (``constrained``), and INT4 with thinking budgets.
* ``ONNX fp32 + torch SAM2``: the ONNX reasoner's answers segmented by the official torch SAM2, so the
  difference to ``ONNX fp32`` is the SAM2 export alone.

Besides gIoU / cIoU: parse rate, box IoU of the answer's box vs the ground-truth box, the mean Seg-Zero
reward (0-5, strict), mean latency, and every sample's IoU, so tests can re-run a prefix of the same
samples and compare (tests/world/test_world_accuracy.py). Greedy decoding: deterministic per machine.
Writes ``benchmarks/results/world_accuracy.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from segzero_edge.evaluation.latency import cpu_model

from . import ASSETS

RESULTS = Path("benchmarks") / "results"
#: The stated margin of a retrain (``make world-retrain``) against the shipped table, in gIoU. On the same
#: software stack with one thread per training the retrain is bitwise identical; the margin covers other
#: CPUs and library versions (different float summation order).
COMPARE_MARGIN = 0.03

#: (row name, engine precision, backend, SegmenterOptions overrides, SAM2 on torch).
ROWS: tuple[tuple[str, str, str, dict, bool], ...] = (
    ("torch fp32 (reference)", "fp32", "torch", {"constrained": False}, False),
    ("torch fp32 + constraint", "fp32", "torch", {"constrained": True}, False),
    ("ONNX fp32", "fp32", "ort", {"constrained": False}, False),
    ("ONNX fp32 + constraint", "fp32", "ort", {"constrained": True}, False),
    ("ONNX fp32 + torch SAM2", "fp32", "ort", {"constrained": False}, True),
    ("INT8", "int8", "ort", {"constrained": False}, False),
    ("INT8 + constraint", "int8", "ort", {"constrained": True}, False),
    ("INT4", "int4", "ort", {"constrained": False}, False),
    ("INT4 + constraint", "int4", "ort", {"constrained": True}, False),
    ("INT4 + constraint, thinking budget 48", "int4", "ort", {"constrained": True, "thinking_budget": 48}, False),
    ("INT4 + constraint, thinking budget 0", "int4", "ort", {"constrained": True, "thinking_budget": 0}, False),
)


class TorchSam2Predictor:
    """``Segmenter.predict`` with the SAM2 stage replaced by the official torch SAM2 on the same prompts."""

    def __init__(self, segmenter, engine: Path) -> None:
        from segzero_edge.sam2 import Sam2Pipeline

        self.segmenter = segmenter
        self.sam2 = Sam2Pipeline(
            engine, device="cpu", backend="torch", verify="size", backend_options={"verify": "size"}
        )

    def predict(self, image: np.ndarray, text: str):
        result = self.segmenter.predict(image, text)
        if not result.found:
            return result
        res = self.sam2.segment(
            image, box=np.asarray(result.box, np.float32), points=np.asarray(result.points, np.float32)[None]
        )
        return dataclasses.replace(result, mask=res.masks[0], score=float(res.scores[0]))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it (results stay machine-independent)."""
    path = path.resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _gt(split_dir: Path, count: int | None) -> dict[str, dict]:
    """Per sample id: the kind, the GT box (inclusive scene pixels) and the Seg-Zero solution at input size."""
    from PIL import Image

    from segzero_edge.training.data import mask_box
    from segzero_edge.world.dataset import read_index

    out = {}
    for r in read_index(split_dir)[:count]:
        m = np.asarray(Image.open(split_dir / r["mask"])) > 0
        out[r["id"]] = {"kind": r["kind"], "box": mask_box(m), "mask": m}
    return out


def run_row(
    name: str,
    engine: Path,
    backend: str,
    options: dict,
    torch_sam2: bool,
    split_dir: Path,
    gt: dict[str, dict],
    input_size: int,
    *,
    count: int | None,
    threads: int,
    max_new_tokens: int,
) -> dict:
    """One table row: ``evaluate`` over the split plus box IoU, reward and per-sample IoUs."""
    from tqdm.auto import tqdm

    from segzero_edge import Segmenter
    from segzero_edge.evaluation import evaluate
    from segzero_edge.training.data import record_geometry
    from segzero_edge.training.rewards import format_solution, seg_zero_reward
    from segzero_edge.world.evaluate import box_iou

    seg = Segmenter(engine, backend=backend, threads=threads, verify="size", max_new_tokens=max_new_tokens, **options)
    predictor = TorchSam2Predictor(seg, engine) if torch_sam2 else seg
    bar = tqdm(total=count or len(gt), desc=name, unit="sample")
    try:
        report = evaluate(predictor, split_dir, limit=count, on_sample=lambda _: bar.update())
    finally:
        bar.close()
        seg.close()
    rewards, box_ious = [], []
    for s in report.samples:
        g = gt[s.id]
        box, pts, _ = record_geometry(g["mask"], input_size)
        rewards.append(seg_zero_reward(s.raw_text, format_solution(box, pts)))
        box_ious.append(box_iou(tuple(s.box) if s.status == "ok" and s.box else None, g["box"]))
    kinds = sorted({g["kind"] for g in gt.values()})
    ious = [s.iou for s in report.samples]
    return {
        "engine_weights": engine.name,
        "backend": backend,
        "options": options,
        "torch_sam2": torch_sam2,
        "samples": len(report.samples),
        "giou": report.scores.giou,
        "ciou": report.scores.ciou,
        "parse_rate": 1.0 - report.parse_failure_rate,
        "errors": report.n_errors,
        "box_iou": float(np.mean(box_ious)),
        "reward": float(np.mean(rewards)),
        "giou_by_kind": {
            k: float(np.mean([v for v, s in zip(ious, report.samples) if gt[s.id]["kind"] == k])) for k in kinds
        },
        "latency_ms_mean": float(np.mean([s.latency_ms for s in report.samples])),
        "wall_s": round(report.wall_s, 1),
        "per_sample": {
            "id": [s.id for s in report.samples],
            "iou": [round(float(v), 6) for v in ious],
            "parsed": [s.status == "ok" for s in report.samples],
        },
    }


def write_markdown(result: dict, path: Path) -> None:
    rows = result["rows"]
    ref = rows[ROWS[0][0]]["giou"] if ROWS[0][0] in rows else None  # absent when --rows leaves it out
    lines = [
        "# World accuracy of the deployment path (test split)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, "
        f"{result['threads']} thread(s), load {result['machine']['loadavg_start']} -> "
        f"{result['machine']['loadavg_end']}  ",
        f"Models: reasoner `{result['reasoner']}` (input {result['input_size']}), SAM2 `{result['sam2']}`; "
        f"INT4/INT8 block size {result['block_size']}; INT4 keeps decoder layers "
        f"{result.get('int4_int8_layers', [])} at INT8; greedy, max_new_tokens {result['max_new_tokens']}",
        "",
        "| path | samples | gIoU | Δ gIoU vs torch fp32 | cIoU | parse rate | box IoU | mean reward (0-5) "
        "| ms / sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        delta = "n/a" if ref is None else f"{r['giou'] - ref:+.3f}"
        lines.append(
            f"| {name} | {r['samples']} | {r['giou']:.3f} | {delta} | {r['ciou']:.3f} | "
            f"{r['parse_rate']:.3f} | {r['box_iou']:.3f} | {r['reward']:.2f} | {r['latency_ms_mean']:.0f} |"
        )
    lines += [
        "",
        "gIoU by query kind: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["giou_by_kind"].items()) for name, r in rows.items()
        ),
        "",
        f"Export seconds (0 = reused): {result['export_seconds']}",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--reasoner", type=Path, default=ASSETS / "reasoner")
    parser.add_argument("--sam2", type=Path, default=ASSETS / "sam2_tiny.pt")
    parser.add_argument("--sam2-config", type=Path, default=ASSETS / "sam2_tiny.yaml")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="world dataset folder with test/ (default: WORK_DIR/data, written when missing)",
    )
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--count", type=int, default=None, help="first N samples (default: all 200)")
    parser.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/world_accuracy"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--name", default="world_accuracy", help="results file stem (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    parser.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="JSON",
        help="a results file (e.g. the shipped benchmarks/results/world_accuracy.json): exit 1 when "
        f"a shared row's gIoU differs by more than {COMPARE_MARGIN} or its parse rate is lower",
    )
    args = parser.parse_args(argv)

    from segzero_edge.manifest import sha256_file
    from segzero_edge.prompt import read_checkpoint_meta
    from segzero_edge.world.dataset import write_split
    from segzero_edge.world.demo import WORLD_BLOCK_SIZE, WORLD_INT8_LAYERS, export_world_engine

    load_start = list(os.getloadavg())
    data = args.data or args.work_dir / "data"
    if not (data / args.split / "index.json").is_file():
        write_split(args.split, data)
    split_dir = data / args.split
    input_size = read_checkpoint_meta(args.reasoner)["input_size"]
    gt = _gt(split_dir, args.count)
    export_s, engines = {}, {}
    for weights in sorted({r[1] for r in ROWS}):
        engines[weights], seconds = export_world_engine(
            args.work_dir / f"engine_{weights}",
            weights,
            reasoner=args.reasoner,
            sam2=args.sam2,
            sam2_config=args.sam2_config,
        )
        export_s[weights] = round(seconds, 1)
    chosen = range(len(ROWS)) if args.rows is None else [int(i) for i in args.rows.split(",")]
    rows = {}
    for i in chosen:
        name, weights, backend, options, torch_sam2 = ROWS[i]
        rows[name] = run_row(
            name,
            engines[weights],
            backend,
            options,
            torch_sam2,
            split_dir,
            gt,
            input_size,
            count=args.count,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens,
        )
        r = rows[name]
        print(
            f"{name}: gIoU {r['giou']:.3f} cIoU {r['ciou']:.3f} parse {r['parse_rate']:.3f} "
            f"box IoU {r['box_iou']:.3f} reward {r['reward']:.2f}",
            flush=True,
        )
    import onnxruntime
    import torch

    result = {
        "what": "gIoU / cIoU (spec §7) of Segmenter.predict on the world split per deployment path",
        "command": " ".join(["python -m segzero_edge.world accuracy", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "split": args.split,
        "reasoner": _shown(args.reasoner),
        "sam2": _shown(args.sam2),
        "sam2_sha256": sha256_file(args.sam2),
        "reasoner_weights_sha256": sha256_file(args.reasoner / "model.safetensors"),
        "input_size": input_size,
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "block_size": WORLD_BLOCK_SIZE,
        "int4_int8_layers": list(WORLD_INT8_LAYERS),
        "export_seconds": export_s,
        "rows": rows,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "loadavg_start": load_start,
            "loadavg_end": list(os.getloadavg()),
        },
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.out_dir / f"{args.name}.md")
    print(f"wrote {args.out_dir / args.name}.json and .md")
    return compare(rows, json.loads(args.compare.read_text())["rows"]) if args.compare else 0


def compare(rows: dict, reference: dict) -> int:
    """Print each shared row against ``reference``; 1 when a gIoU is off by more than ``COMPARE_MARGIN`` or a
    parse rate is lower, else 0."""
    bad = 0
    for name in rows.keys() & reference.keys():
        a, b = rows[name], reference[name]
        ok = abs(a["giou"] - b["giou"]) <= COMPARE_MARGIN and a["parse_rate"] >= b["parse_rate"] - 1e-9
        bad += not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} {name}: gIoU {a['giou']:.3f} vs {b['giou']:.3f}, parse rate "
            f"{a['parse_rate']:.3f} vs {b['parse_rate']:.3f}"
        )
    return int(bad > 0)


if __name__ == "__main__":
    raise SystemExit(main())
