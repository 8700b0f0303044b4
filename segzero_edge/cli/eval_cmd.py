"""``segzero-edge eval ENGINE_DIR DATASET``: gIoU / cIoU as Seg-Zero's evaluation defines them (spec §7).

Dataset layouts (``--layout``, detected by default):

  parquet    Seg-Zero's published sets (Ricky06662/ReasonSeg_test, ReasonSeg_val, RefCOCO(+/g) evaluation sets)
             downloaded as *.parquet shards: columns image, text, mask (2-D bool list), image_id, ann_id, ...
             (--split test picks test-*.parquet)
  hf-disk    the same rows saved with datasets' save_to_disk
  index      a folder with index.json = [{"id", "image", "mask", "text"}, ...]; mask = an image, non-zero = object;
             a multi-object record gives "masks": [one mask file per object] instead
  refcoco    RefCOCO/+/g release: refs(<split_by>).p + instances.json + images/ (--split, default val)
  reasonseg  LISA's ReasonSeg folders: <name>.jpg + <name>.json (first query; "ignore" regions count as target)

Scoring: gIoU = mean per-sample IoU, cIoU = sum I / sum U. A sample whose answer cannot be decoded (parse
failure) or whose prediction raises is a miss. Samples whose prediction and ground truth are both empty score
1 and are counted; --drop-both-empty drops them as the official script does (the summary has both).
Multi-object answers (VisionReasoner engines) are scored as VisionReasoner's evaluation does: the union of
the objects' masks against the union mask; with per-object ground truth ("masks") the answer's boxes are
also matched to the objects' boxes (Hungarian matching on IoU) for box precision and recall at IoU 0.5
(needs scipy: the eval extra).
With --out OUT, writes OUT/samples.jsonl (one line per sample, as it is done) and OUT/summary.json. When no
sample could be scored (every record skipped) it fails with exit code 1 instead of reporting a gIoU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..files import output_dir
from .base import DEVICE_HELP, Command, command_line, positive_int, progress_bar
from .options import add_lens_argument, add_option_arguments, option_values

#: The request options this command exposes (``SegmenterOptions.names()``); the official evaluation is
#: unconstrained (--no-constraint), where answers may fail to parse.
OPTIONS = ("max_new_tokens", "constrained", "max_objects", "allow_empty")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..evaluation.datasets import LAYOUTS

    parser.add_argument("engine_dir", type=Path, help="engine directory written by `segzero-edge export`")
    parser.add_argument("dataset", type=Path, help="dataset folder (or a .parquet file); layouts above")
    parser.add_argument("--layout", default="auto", choices=LAYOUTS, help="dataset layout (default: detect)")
    parser.add_argument("--split", default=None, help="parquet/hf-disk split (e.g. test), RefCOCO split (val)")
    parser.add_argument("--split-by", default=None, help="RefCOCO refs file refs(SPLIT_BY).p: umd, unc, google")
    parser.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N samples (N >= 1)")
    parser.add_argument(
        "--drop-both-empty",
        action="store_true",
        help="drop samples whose prediction and ground truth are both empty (official behaviour)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write samples.jsonl and summary.json into this folder (without --out only the summary is printed)",
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--backend", default="auto", choices=["auto", "ort", "trt"], help="SAM2 backend")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per ONNX Runtime session")
    add_option_arguments(parser, OPTIONS)
    add_lens_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    from ..evaluation import aggregate, evaluate, open_dataset
    from ..evaluation.latency import machine_info
    from ..segmenter import Segmenter

    dataset = open_dataset(args.dataset, args.layout, split=args.split, split_by=args.split_by)
    total = len(dataset)
    if args.limit is not None:
        total = min(total, args.limit)
    out = None if args.out is None else output_dir(args.out, inputs=(args.dataset,))
    started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    machine = machine_info()
    bar = progress_bar(total, "eval", "sample") if not args.no_progress else None
    with (
        Segmenter(
            args.engine_dir,
            device=args.device,
            backend=args.backend,
            threads=args.threads,
            cache_size=1,
            **option_values(args, OPTIONS),
            lens_context=args.lens_context,
        ) as seg,
        open(out / "samples.jsonl", "w") if out else contextlib.nullcontext() as jsonl,
    ):

        def on_sample(r: Any) -> None:
            if jsonl is not None:
                jsonl.write(json.dumps(r.to_dict()) + "\n")
                jsonl.flush()
            if bar is not None:
                bar.set_postfix_str(f"{r.status} iou={r.iou if r.iou is not None else '-'}", refresh=False)
                bar.update(1)

        try:
            report = evaluate(seg, dataset, limit=args.limit, drop_both_empty=args.drop_both_empty, on_sample=on_sample)
        finally:
            if bar is not None:
                bar.close()
    counts = [c for c in (r.counts() for r in report.samples) if c is not None]
    official = aggregate(counts, drop_both_empty=True)
    kept = aggregate(counts, drop_both_empty=False)
    summary = {
        "schema": "segzero-edge.eval/1",
        "command": command_line("eval", args, ["engine_dir", "dataset"]),
        "date": started,
        "machine": machine,
        "engine_dir": str(args.engine_dir),
        "options": {
            "limit": args.limit,
            "drop_both_empty": args.drop_both_empty,
            "device": args.device,
            "backend": args.backend,
            **option_values(args, OPTIONS),
        },
        **report.to_dict(),
        "both_empty_counted": {"giou": kept.giou, "ciou": kept.ciou, "n_scored": kept.n_scored},
        "both_empty_dropped_official": {"giou": official.giou, "ciou": official.ciou, "n_scored": official.n_scored},
    }
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    s = report.scores
    if s.n_scored == 0:
        raise DatasetError(
            f"no sample of {args.dataset} was scored ({report.n_skipped} record(s) skipped as unreadable, "
            f"{s.n_samples} predicted, none left to average)",
            hint="check the dataset folder and --layout; the per-record reasons are in samples.jsonl (--out)",
        )
    print(
        f"segzero-edge eval: {args.dataset} ({dataset.layout}), {s.n_samples} samples scored, "
        f"{report.n_skipped} skipped"
    )
    print(
        f"gIoU {100 * s.giou:.2f}  cIoU {100 * s.ciou:.2f}  "
        f"({'both-empty samples dropped' if s.dropped_both_empty else f'{s.n_both_empty} both-empty counted'})"
    )
    print(f"official (both-empty dropped): gIoU {100 * official.giou:.2f}  cIoU {100 * official.ciou:.2f}")
    print(
        f"parse failures {report.n_parse_failures} ({100 * report.parse_failure_rate:.1f}%), "
        f"errors {report.n_errors}, misses in total {s.n_failed}"
    )
    if report.detection is not None:
        d = report.detection
        print(
            f"boxes at IoU {d.threshold}: precision {100 * d.precision:.2f}  recall {100 * d.recall:.2f}  "
            f"({d.n_matched} matched of {d.n_pred} predicted, {d.n_gt} ground-truth objects in {d.n_samples} samples)"
        )
    if report.box_hit_rate is not None:
        print(f"box hit rate (a predicted box at IoU > 0.5 with the dataset's bbox): {100 * report.box_hit_rate:.2f}")
    if out is not None:
        print(f"wrote {out / 'samples.jsonl'} and {out / 'summary.json'}")
    return 0


COMMAND = Command(name="eval", add_arguments=_add_arguments, run=_run, description=__doc__ or "")
