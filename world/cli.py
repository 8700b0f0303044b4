"""``python -m segzero_edge.world``: the small world's dataset, tiny reasoner training and report.

Subcommands::

    dataset         --out DIR [--input-size S | --checkpoint CKPT]   write the splits (+ train in Seg-Zero layout)
    train-reasoner  --out DIR [--sft-steps N] [--grpo-steps N] ...    build -> SFT -> GRPO, seeded and resumable
    retrain         --out DIR                                         SAM2 and reasoner from scratch, in parallel
    eval-reasoner   --checkpoint CKPT [...] --data DIR --out FILE    test-split metrics of one checkpoint
    train-sam2-video --sam2 PT --out PT [--steps N]                   the SAM2's video path, on moving clips
    track-accuracy  [--clips N] [--sam2 PT] [--family lens]           J/F of tracking on the test clips
    train-reasoner-multi --out DIR [--sft-steps N] [--grpo-steps N]   the multi-object (VisionReasoner) reasoner
    multi-accuracy  [--reasoner DIR] [--count N]                      counting, boxes and thinks, per path
    train-lens-head --out DIR [--samples N] [--steps N]               a LENS head on the frozen world reasoner
    lens-accuracy   [--head PT] [--count N]                           LENS masks vs box-and-points, per path
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from segzero_edge.errors import SegZeroError

logger = logging.getLogger(__name__)

#: The shipped reasoner recipe (docs/world.md): all train samples, SFT 12000 steps x 8 rows (16 epochs) with
#: the grounding loss (with answer digits) and the attention supervision (at every shape the think names)
#: at weight 1, then GRPO_STEPS steps of the world_reasoner GRPO recipe.
TRAIN_ROWS = 6000
SFT_STEPS = 12000
SFT_ATTENTION_MENTIONS = True
SFT_GROUNDING_DIGITS = True
SFT_RESTART_STEPS = 0
SFT_GROUNDING_WEIGHT = 1.0
SFT_ATTENTION_WEIGHT = 1.0
GRPO_STEPS = 300
#: The GRPO recipe of the world reasoner (a ``segzero-edge train`` YAML config).
RECIPE = Path(__file__).resolve().parent / "recipes" / "world_reasoner.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m segzero_edge.world",
        description="The small world: data, tiny models (SAM2; reasoner SFT + GRPO), accuracy tables.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("dataset", help="write the fixed splits (index layout) and the train split (Seg-Zero layout)")
    d.add_argument("--out", required=True, metavar="DIR", help="output folder")
    size = d.add_mutually_exclusive_group(required=True)
    size.add_argument("--input-size", type=int, help="the reasoner's input size S (multiple of 28)")
    size.add_argument("--checkpoint", help="take S from this reasoner checkpoint's segzero_edge.json")
    d.add_argument("--splits", default="train,val,test", help="comma-separated splits (default: all)")

    t = sub.add_parser("train-reasoner", help="build the tiny reasoner, SFT it, then GRPO (world_reasoner recipe)")
    t.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (data/, init/, sft/, grpo/; the reasoner is grpo/final)"
    )
    t.add_argument("--seed", type=int, default=0, help="weights, data order and sampling seed (default 0)")
    t.add_argument(
        "--train-rows",
        type=int,
        default=TRAIN_ROWS,
        help=f"use the first N samples of the train split (default {TRAIN_ROWS})",
    )
    t.add_argument("--sft-steps", type=int, default=SFT_STEPS, help=f"SFT optimizer steps (default {SFT_STEPS})")
    t.add_argument("--sft-batch", type=int, default=8, help="SFT rows per step (default 8)")
    t.add_argument("--sft-lr", type=float, default=2e-3, help="SFT peak learning rate (default 2e-3)")
    t.add_argument(
        "--think-boxes",
        action="store_true",
        help="the templated think gives every shape's box (changes the tokenizer corpus and the SFT "
        "targets; the scenes and answers are the same)",
    )
    t.add_argument(
        "--sft-grounding-weight",
        type=float,
        default=SFT_GROUNDING_WEIGHT,
        help="weight of the dense grounding loss on the vision tokens during SFT "
        f"(world/grounding.py; 0 = off; default {SFT_GROUNDING_WEIGHT})",
    )
    t.add_argument(
        "--sft-attention-weight",
        type=float,
        default=SFT_ATTENTION_WEIGHT,
        help="weight of the answer-attention supervision during SFT (world/attention.py: "
        f"one head per text layer looks at the target's image tokens; 0 = off; default "
        f"{SFT_ATTENTION_WEIGHT})",
    )
    t.add_argument(
        "--sft-attention-mentions",
        action=argparse.BooleanOptionalAction,
        default=SFT_ATTENTION_MENTIONS,
        help="also supervise that head at every think phrase that names a shape (the inventory items, "
        "the reference and the target), towards that shape's image tokens (default: on)",
    )
    t.add_argument(
        "--sft-grounding-digits",
        action=argparse.BooleanOptionalAction,
        default=SFT_GROUNDING_DIGITS,
        help="the grounding head also predicts, on every object token, the hundreds and tens digits of "
        "that object's 8 answer numbers (box and points) (default: on)",
    )
    t.add_argument(
        "--sft-restart-steps",
        type=int,
        default=SFT_RESTART_STEPS,
        help="a second SFT cycle (warm restart from the first one's weights, lr --sft-restart-lr, "
        f"data order seed + 1) of this many steps; 0 = none (default {SFT_RESTART_STEPS})",
    )
    t.add_argument("--sft-restart-lr", type=float, default=1e-3, help="its peak learning rate (default 1e-3)")
    t.add_argument("--grpo-steps", type=int, default=GRPO_STEPS, help=f"GRPO steps (default {GRPO_STEPS})")
    t.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: tiny models gain little from more; on a loaded 2-core "
        "machine 2 threads were 4x slower)",
    )
    t.add_argument("--skip-grpo", action="store_true", help="stop after SFT")
    t.add_argument("overrides", nargs="*", metavar="section.key=value", help="GRPO recipe overrides")

    r = sub.add_parser("retrain", help="both world models from scratch, in parallel (shipped settings, seeded)")
    r.add_argument("--out", required=True, metavar="DIR", help="run folder (sam2/, reasoner/, logs, retrain.json)")
    r.add_argument("--seed", type=int, default=0, help="seed of both trainings (default 0: the shipped models)")

    e = sub.add_parser("eval-reasoner", help="evaluate checkpoints on a split (box IoU, parse rate, reward)")
    e.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="NAME=DIR",
        help="a checkpoint to evaluate, as NAME=DIR (repeatable)",
    )
    e.add_argument("--data", required=True, metavar="DIR", help="the world dataset folder (with test/)")
    e.add_argument("--split", default="test")
    e.add_argument("--count", type=int, default=None, help="first N records only")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument(
        "--sam2-engine", default=None, metavar="DIR", help="engine directory with the world SAM2: adds gIoU / cIoU"
    )
    e.add_argument("--out", default="benchmarks/results/world_reasoner", help="JSON + markdown path stem")
    return p


def _dataset(args: argparse.Namespace) -> int:
    from segzero_edge.prompt import read_checkpoint_meta

    from .dataset import write_world_dataset

    size = args.input_size if args.checkpoint is None else read_checkpoint_meta(args.checkpoint)["input_size"]
    written = write_world_dataset(args.out, input_size=size, splits=tuple(s for s in args.splits.split(",") if s))
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def train_reasoner(args: argparse.Namespace) -> Path:
    """build -> dataset -> SFT -> GRPO under ``args.out``; returns the final checkpoint directory."""
    import numpy as np
    import torch
    from PIL import Image

    from segzero_edge.prompt import read_checkpoint_meta
    from segzero_edge.training.config import load_config
    from segzero_edge.training.data import mask_box
    from segzero_edge.training.grpo import train as grpo_train

    from .dataset import SEGZERO_DIR, read_index, write_split
    from .reasoner import build_initial_checkpoint, world_corpus
    from .sft import SFTConfig, run_sft

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    times: dict[str, float] = {}
    data = out / "data"
    t0 = time.perf_counter()
    if not (data / "train" / "index.json").exists():
        write_split("train", data, think_boxes=args.think_boxes)
    records = read_index(data / "train")
    times["dataset_raw_s"] = time.perf_counter() - t0

    init = out / "init"
    t0 = time.perf_counter()
    if not (init / "segzero_edge.json").exists():
        rows = []
        for r in records:  # answers for the tokenizer corpus: the structure matters, not the exact numbers
            x1, y1, x2, y2 = mask_box(np.asarray(Image.open(data / "train" / r["mask"])) > 0)
            sol = f"<box>({x1},{y1}),({x2},{y2})</box><points>({(x1 + x2) // 2},{(y1 + y2) // 2}),({x1},{y1})</points>"
            rows.append((r["text"], r["reasoning"], sol))
        build_initial_checkpoint(init, world_corpus(rows), seed=args.seed)
    input_size = read_checkpoint_meta(init)["input_size"]
    times["build_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    segzero = data / SEGZERO_DIR
    marker = segzero / "world_meta.json"
    want = {"input_size": input_size, "rows": args.train_rows}
    if not marker.exists() or json.loads(marker.read_text()) != want:
        from segzero_edge.training.prepare import prepare_dataset

        prepare_dataset(
            "index",
            data / "train",
            segzero,
            input_size=input_size,
            resample="bilinear",
            shard_rows=1000,
            max_records=args.train_rows,
        )
        marker.write_text(json.dumps(want) + "\n")
    times["prepare_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sft_cfg = SFTConfig(
        steps=args.sft_steps,
        batch_size=args.sft_batch,
        learning_rate=args.sft_lr,
        warmup_steps=min(50, args.sft_steps // 10),
        seed=args.seed,
        threads=args.threads,
        grounding_weight=args.sft_grounding_weight,
        answer_attention_weight=args.sft_attention_weight,
        attention_mentions=args.sft_attention_mentions,
        grounding_digits=args.sft_grounding_digits,
    )
    sft = run_sft(init, out / "sft", segzero, data / "train", sft_cfg)
    if args.sft_restart_steps:
        restart = SFTConfig(
            steps=args.sft_restart_steps,
            batch_size=args.sft_batch,
            learning_rate=args.sft_restart_lr,
            warmup_steps=min(50, args.sft_restart_steps // 10),
            seed=args.seed + 1,
            threads=args.threads,
        )
        sft = run_sft(sft["final"], out / "sft_restart", segzero, data / "train", restart)
    times["sft_s"] = time.perf_counter() - t0
    if args.skip_grpo:
        return sft["final"]

    t0 = time.perf_counter()
    overrides = [
        f"model.name_or_path={sft['final']}",
        f"data.train={segzero}",
        f"run.output_dir={out / 'grpo'}",
        f"run.seed={args.seed + 42}",
        *args.overrides,
    ]
    if args.grpo_steps is not None:
        overrides.append(f"run.max_steps={args.grpo_steps}")
    cfg = load_config(RECIPE, overrides)
    final = grpo_train(cfg)
    times["grpo_s"] = time.perf_counter() - t0
    (out / "times.json").write_text(json.dumps(times, indent=2) + "\n")
    return final


def _delegated(name: str):
    """The ``main(argv)`` of a subcommand with its own parser."""
    if name == "accuracy":
        from .accuracy import main as run
    elif name == "eval-sam2":
        from .eval_sam2 import main as run
    elif name == "train-sam2":
        from .sam2_train import main as run
    elif name == "train-sam2-video":
        from .sam2_video_train import main as run
    elif name == "track-accuracy":
        from .track_eval import main as run
    elif name == "train-reasoner-multi":
        from .multi_train import main as run
    elif name == "multi-accuracy":
        from .multi_accuracy import main as run
    elif name == "train-lens-head":
        from .lens_head import main as run
    elif name == "lens-accuracy":
        from .lens_accuracy import main as run
    else:
        return None
    return run


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    run = _delegated(argv[0]) if argv else None
    if run is not None:
        try:
            return run(argv[1:])
        except SegZeroError as exc:  # a missing checkpoint, a bad config: one line, no traceback
            print(f"segzero_edge.world {argv[0]}: error: {exc}", file=sys.stderr)
            return 1
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "dataset":
            return _dataset(args)
        if args.cmd == "train-reasoner":
            print(f"final checkpoint: {train_reasoner(args)}")
            return 0
        if args.cmd == "retrain":
            from .retrain import retrain

            print(json.dumps(retrain(args.out, seed=args.seed), indent=2))
            return 0
        from .evaluate import run_eval_cli

        return run_eval_cli(args)
    except SegZeroError as exc:
        print(f"segzero_edge.world: error: {exc}", file=sys.stderr)
        return 1
