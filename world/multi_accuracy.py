"""The world's multi-object table: counting, boxes and faithful thinks per deployment path.

    python -m segzero_edge.world multi-accuracy [--reasoner DIR] [--count 200] [--work-dir .cache/world_multi]

The multi-object reasoner (``world/assets/reasoner_multi``, VisionReasoner family) is exported like the
demo's engines (``world.demo.export_world_engine``: fp32 and INT4 with the world's block size and INT8
layers, the shipped SAM2), and every row runs ``Segmenter.predict`` over the multi-object test split
(``world.multi``, 200 instructions naming 2 to 6 shapes) through ``segzero_edge.evaluation.evaluate``:
gIoU / cIoU of the union mask, box precision and recall at IoU 0.5 after Hungarian matching, parse rate,
and the think's faithfulness (``world.multi.faithfulness``: it names every target; every shape it names
exists). Three more rows put the numbers in context: the multi-object reasoner on the single-object test
split, and the shipped single-object (Seg-Zero family) reasoner on both splits (on the multi-object one it can
only ever answer one shape; on its own split its think lists the whole scene). Greedy decoding. Writes
``benchmarks/results/world_multi.{json,md}``.
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
from .multi import MAX_NEW_TOKENS, MAX_OBJECTS

RESULTS = Path("benchmarks") / "results"
MULTI_REASONER = ASSETS / "reasoner_multi"

#: (row name, reasoner: "multi" or "single", precision, backend, options, split: "multi" or "single").
ROWS: tuple[tuple[str, str, str, str, dict, str], ...] = (
    ("torch fp32", "multi", "fp32", "torch", {"constrained": False}, "multi"),
    ("ONNX INT4", "multi", "int4", "ort", {"constrained": False}, "multi"),
    ("ONNX INT4 + constraint", "multi", "int4", "ort", {"constrained": True}, "multi"),
    ("single-object test split, INT4 + constraint", "multi", "int4", "ort", {"constrained": True}, "single"),
    ("shipped Seg-Zero-family reasoner, INT4 + constraint", "single", "int4", "ort", {"constrained": True}, "multi"),
    ("shipped Seg-Zero-family reasoner, single-object split", "single", "int4", "ort", {"constrained": True}, "single"),
)


def _targets(split_dir: Path) -> dict[str, tuple[list[dict], list[int]]]:
    """Per sample id: the scene's objects and the target indices (single-object splits: the label under
    most of the target mask)."""
    from PIL import Image

    out = {}
    for r in json.loads((split_dir / "index.json").read_text()):
        if "targets" in r:
            out[r["id"]] = (r["objects"], list(r["targets"]))
        else:
            labels = np.asarray(Image.open(split_dir / r["labels"]))
            mask = np.asarray(Image.open(split_dir / r["mask"])) > 0
            k = int(np.bincount(labels[mask], minlength=len(r["objects"]) + 1)[1:].argmax())
            out[r["id"]] = (r["objects"], [k])
    return out


def run_row(
    name: str,
    engine: Path,
    backend: str,
    options: dict,
    split_dir: Path,
    *,
    count,
    threads,
    max_new_tokens,
    max_objects,
):
    from tqdm.auto import tqdm

    from segzero_edge import Segmenter, decode_answer
    from segzero_edge.evaluation import evaluate

    from .multi import faithfulness

    truth = _targets(split_dir)
    seg = Segmenter(
        engine,
        backend=backend,
        threads=threads,
        verify="size",
        max_new_tokens=max_new_tokens,
        max_objects=max_objects,
        **options,
    )
    bar = tqdm(total=count or len(truth), desc=name, unit="sample")
    try:
        report = evaluate(seg, split_dir, limit=count, on_sample=lambda _: bar.update())
    finally:
        bar.close()
        seg.close()
    faith = [faithfulness(decode_answer(s.raw_text).think, *truth[s.id]) for s in report.samples]
    d = report.detection
    return {
        "engine": engine.name,
        "backend": backend,
        "options": options,
        "split": split_dir.name,
        "samples": len(report.samples),
        "giou": report.scores.giou,
        "ciou": report.scores.ciou,
        "parse_rate": 1.0 - report.parse_failure_rate,
        "box_precision": d.precision if d else None,
        "box_recall": d.recall if d else None,
        "objects_per_answer": float(np.mean([s.n_pred_objects for s in report.samples])),
        "objects_per_sample": float(np.mean([len(truth[s.id][1]) for s in report.samples])),
        "names_targets": float(np.mean([f["names_targets"] for f in faith])),
        "no_invented": float(np.mean([f["no_invented"] for f in faith])),
        "faithful": float(np.mean([f["faithful"] for f in faith])),
        "latency_ms_mean": float(np.mean([s.latency_ms for s in report.samples])),
        "per_sample": {
            "id": [s.id for s in report.samples],
            "iou": [round(float(s.iou or 0.0), 6) for s in report.samples],
            "objects": [s.n_pred_objects for s in report.samples],
        },
    }


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# World multi-object accuracy (VisionReasoner-family reasoner)",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, {result['threads']} thread(s)  ",
        f"Models: multi-object reasoner `{result['reasoner']}`, single-object reasoner `{result['single_reasoner']}`, "
        f"SAM2 `{result['sam2']}`; greedy, max_new_tokens {result['max_new_tokens']}, "
        f"max_objects {result['max_objects']}",
        "",
        "| path | split | samples | gIoU | cIoU | box precision | box recall | objects / answer (truth) "
        "| parse rate | think names targets | think invents nothing | faithful | ms / sample |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['split']} | {r['samples']} | {r['giou']:.3f} | {r['ciou']:.3f} | "
            f"{_fmt(r['box_precision'])} | {_fmt(r['box_recall'])} | {r['objects_per_answer']:.2f} "
            f"({r['objects_per_sample']:.2f}) | {r['parse_rate']:.3f} | {r['names_targets']:.3f} | "
            f"{r['no_invented']:.3f} | {r['faithful']:.3f} | {r['latency_ms_mean']:.0f} |"
        )
    lines += ["", f"Export seconds (0 = reused): {result['export_seconds']}", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    parser.add_argument("--reasoner", type=Path, default=MULTI_REASONER, help="the multi-object reasoner")
    parser.add_argument("--single-reasoner", type=Path, default=ASSETS / "reasoner")
    parser.add_argument("--sam2", type=Path, default=ASSETS / "sam2_tiny.pt")
    parser.add_argument("--sam2-config", type=Path, default=ASSETS / "sam2_tiny.yaml")
    parser.add_argument("--count", type=int, default=None, help="first N samples (default: all 200)")
    parser.add_argument("--rows", default=None, help="comma-separated row numbers to run (default: all)")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/world_multi"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument("--max-objects", type=int, default=MAX_OBJECTS)
    parser.add_argument("--name", default="world_multi", help="results file stem (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from segzero_edge.manifest import sha256_file
    from segzero_edge.world.dataset import write_split

    from .accuracy import _shown
    from .demo import export_world_engine
    from .multi import write_multi_split

    data = args.work_dir / "data"
    splits = {"multi": data / "multi_test", "single": data / "test"}
    if not (splits["multi"] / "index.json").is_file():
        write_multi_split("multi_test", data)
    if not (splits["single"] / "index.json").is_file():
        write_split("test", data)
    chosen = range(len(ROWS)) if args.rows is None else [int(i) for i in args.rows.split(",")]
    engines, export_s, rows = {}, {}, {}
    for i in chosen:
        name, which, weights, backend, options, split = ROWS[i]
        key = f"{which}_{weights}"
        if key not in engines:
            reasoner = args.reasoner if which == "multi" else args.single_reasoner
            engines[key], seconds = export_world_engine(
                args.work_dir / f"engine_{key}",
                weights,
                reasoner=reasoner,
                sam2=args.sam2,
                sam2_config=args.sam2_config,
            )
            export_s[key] = round(seconds, 1)
        rows[name] = run_row(
            name,
            engines[key],
            backend,
            options,
            splits[split],
            count=args.count,
            threads=args.threads,
            max_new_tokens=args.max_new_tokens,
            max_objects=args.max_objects,
        )
        r = rows[name]
        print(
            f"{name}: gIoU {r['giou']:.3f} cIoU {r['ciou']:.3f} P {_fmt(r['box_precision'])} "
            f"R {_fmt(r['box_recall'])} parse {r['parse_rate']:.3f} faithful {r['faithful']:.3f}",
            flush=True,
        )
    import onnxruntime
    import torch

    result = {
        "what": "multi-object gIoU / cIoU, box precision / recall, parse rate and think faithfulness in the world",
        "command": " ".join(
            ["python -m segzero_edge.world multi-accuracy", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "reasoner": _shown(args.reasoner),
        "reasoner_weights_sha256": sha256_file(args.reasoner / "model.safetensors"),
        "single_reasoner": _shown(args.single_reasoner),
        "sam2": _shown(args.sam2),
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "max_objects": args.max_objects,
        "export_seconds": export_s,
        "rows": rows,
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.out_dir / f"{args.name}.md")
    print(f"wrote {args.out_dir / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
