"""Accuracy of the small world's tiny reasoner on the test split: SFT only vs SFT + GRPO (issue 9, Table 1).

Usage (from the repository root, after training with
``python -m segzero_edge.training.world train-reasoner --out runs/world_reasoner``)::

    .venv/bin/python benchmarks/world_reasoner.py                       # defaults below
    .venv/bin/python benchmarks/world_reasoner.py --run runs/world_reasoner --count 100

Writes ``benchmarks/results/world_reasoner.{json,md}``: parse rate, box IoU (predicted vs GT box),
box accuracy at IoU 0.5, mean Seg-Zero reward and its components, per query kind; gIoU / cIoU once the
tiny SAM2 of branch ``world-sam2`` exists. Greedy decoding with transformers, so every number is
deterministic for a given checkpoint; machine, command, date, load average and threads are recorded.
"""

from __future__ import annotations

import argparse
import sys

from segzero_edge.training.world.evaluate import run_eval_cli


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/world_reasoner", help="train-reasoner output folder")
    p.add_argument("--sft", default=None, help="SFT checkpoint (default RUN/sft/final)")
    p.add_argument("--grpo", default=None, help="SFT + GRPO checkpoint (default RUN/grpo/final)")
    p.add_argument("--data", default=None, help="world dataset folder (default RUN/data)")
    p.add_argument("--split", default="test")
    p.add_argument("--count", type=int, default=None, help="first N records of the split (default: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sam2-engine", default=None, help="engine dir with the world SAM2 (adds gIoU / cIoU)")
    p.add_argument("--out", default="benchmarks/results/world_reasoner")
    a = p.parse_args()
    ns = argparse.Namespace(
        checkpoint=[f"SFT={a.sft or a.run + '/sft/final'}", f"SFT+GRPO={a.grpo or a.run + '/grpo/final'}"],
        data=a.data or a.run + "/data",
        split=a.split,
        count=a.count,
        threads=a.threads,
        out=a.out,
        sam2_engine=a.sam2_engine,
        command=" ".join(["python benchmarks/world_reasoner.py", *sys.argv[1:]]),
    )
    return run_eval_cli(ns)


if __name__ == "__main__":
    sys.exit(main())
