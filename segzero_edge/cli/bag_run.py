"""``track`` and ``predict`` over a ROS bag's image topic, results into an MCAP file (``ros.bag``).

    segzero-edge track ENGINE BAG --topic /camera/image_raw "TEXT" --out result.mcap
    segzero-edge predict ENGINE BAG --topic /camera/image_raw "TEXT" --every 10 --out result.mcap

The output is written to a staging folder beside it and moved into place when the run ends (Ctrl-C or
SIGTERM included: the frames done until then are kept); nothing is written without ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import InputError
from ..files import publish_modes, remove_stale, staging_dir, writable_parent
from .base import progress_bar


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
    bar = progress_bar(total, "tracking" if mode == "track" else "predict", "frame")
    track, n, found, interrupted, t_start = None, 0, 0, False, time.perf_counter()
    try:
        for frame in source:
            if getattr(args, "max_frames", None) is not None and n >= args.max_frames:
                break
            if mode == "predict":
                res = seg.predict(frame.rgb, args.text)
            elif track is None:
                track = seg.track(frame.rgb, args.text, box=args.box, reason_after_lost=args.reason_after_lost)
                res = track.last
            else:
                res = track.update(frame.rgb)
            if writer is not None:
                writer.write(frame, res)
            n, found = n + 1, found + res.found
            if bar is not None:
                bar.update()
            elif n == 1 or n % 30 == 0:
                print(f"frame {frame.index}: {json.dumps({'found': res.found})}", file=sys.stderr)
    except KeyboardInterrupt:
        if n == 0:
            raise
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if track is not None:
            track.close()
    if n == 0:
        raise InputError(f"{source.name} has no messages", hint="check the topic with `ros2 bag info`")
    return n, time.perf_counter() - t_start, found, interrupted
