"""``track`` and ``predict`` over a ROS bag's image topic, results into an MCAP file (``ros.bag``).

    segzero-edge track ENGINE BAG --topic /camera/image_raw "TEXT" --out result.mcap
    segzero-edge predict ENGINE BAG --topic /camera/image_raw "TEXT" --every 10 --out result.mcap

The output is written to a staging folder beside it and moved into place when the run ends (Ctrl-C or
SIGTERM included: the frames done until then are kept); nothing is written without ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import sys
from pathlib import Path

from ..errors import InputError
from ..files import publish_modes, remove_stale, staging_dir, writable_parent
from .frame_loop import TrackSteps, frame_loop


def add_bag_arguments(parser: argparse.ArgumentParser, *, every: bool) -> None:
    """``--topic`` (and ``--every`` for predict)."""
    parser.add_argument(
        "--topic",
        default=None,
        help="with a ROS bag as input: the sensor_msgs/Image or CompressedImage topic to read "
        "(default: the bag's only image topic)",
    )
    if every:
        parser.add_argument(
            "--every",
            type=int,
            default=1,
            metavar="N",
            help="with a ROS bag as input: segment every Nth frame of the topic (default: %(default)s)",
        )


def _output(out: Path | None, bag: Path) -> Path | None:
    if out is None:
        return None
    path = writable_parent(out)
    if path.suffix.lower() != ".mcap":
        raise InputError(f"--out {path.name}: results of a bag are written as MCAP", hint="name it result.mcap")
    inside = path.resolve() == bag.resolve() or path.resolve().is_relative_to(bag.resolve())
    with contextlib.suppress(OSError):
        inside = inside or (path.exists() and path.samefile(bag))
    if inside:
        raise InputError(f"{path} is (inside) the input bag", hint="write the results to another file")
    return path


def run_bag(args: argparse.Namespace, bag: Path, *, mode: str, segmenter_kwargs: dict) -> int:
    """Run ``mode`` ("track" or "predict") on every (``--every``) frame of ``--topic`` of ``bag``."""
    from ..ros.bag import BagSource, ResultBagWriter
    from ..segmenter import Segmenter

    every = getattr(args, "every", 1)
    if every < 1:
        raise InputError(f"--every must be >= 1, got {every}")
    out = _output(args.out, bag)
    stage = None
    if out is not None:
        remove_stale(out.parent)
        stage = staging_dir(out)
    try:
        with BagSource(bag, args.topic, every=every) as source, Segmenter(args.engine_dir, **segmenter_kwargs) as seg:
            writer = ResultBagWriter(stage / out.name, source.topic) if out else None
            try:
                stats = _loop(args, source, seg, writer, mode)
            finally:
                if writer is not None:
                    writer.close()
        if stage is not None:
            publish_modes(stage)
            os.replace(stage / out.name, out)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    n, seconds, found, interrupted = stats
    print(f"topic     : {source.topic} ({source.msgtype.rsplit('/', 1)[-1]}, {source.count} messages)")
    print(f"frames    : {n} in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} fps), object found in {found}")
    if interrupted:
        print("stopped   : interrupted; the output holds the frames done until then", file=sys.stderr)
    if out is not None:
        print(f"wrote     : {out} (topics {writer.mask_topic}, {writer.result_topic}, {writer.annotations_topic})")
    return 130 if interrupted else 0


def _loop(args, source, seg, writer, mode: str) -> tuple[int, float, int, bool]:
    total = -(-source.count // source.every)
    if getattr(args, "max_frames", None):
        total = min(total, args.max_frames)
    found = 0

    def on_result(frame, res) -> None:
        nonlocal found
        if writer is not None:
            writer.write(frame, res)
        found += res.found

    steps = (
        None
        if mode == "predict"
        else TrackSteps(seg, text=args.text, box=args.box, reason_after_lost=args.reason_after_lost)
    )

    def step(frame):
        return seg.predict(frame.rgb, args.text) if steps is None else steps(frame.rgb)

    try:
        frames = itertools.islice(source, getattr(args, "max_frames", None))
        n, seconds, interrupted = frame_loop(frames, step, on_result, total=total, desc=mode)
    finally:
        if steps is not None:
            steps.close()
    if n == 0:
        raise InputError(f"{source.name} has no messages", hint="check the topic with `ros2 bag info`")
    return n, seconds, found, interrupted
