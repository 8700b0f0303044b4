"""Replay frames as a ROS 2 camera topic: try a node without a robot, and drive its tests and benchmark.

    python -m segzero_edge.ros.replay VIDEO_OR_FOLDER --topic /camera/image_raw --fps 15 --seconds 20

Publishes ``sensor_msgs/Image`` (``rgb8``, or ``--encoding bgr8``) with the sensor-data QoS a camera driver
uses, each stamped with the wall clock (``time.time()``, as a driver stamping with the system clock does) and
``--frame-id``; loops the frames until ``--seconds`` or ``--count`` is reached. Prints one JSON line at the end:
frames published and the achieved rate (and with ``--print-stamps`` every stamp, ``[sec, nanosec]``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterable

import numpy as np

from ..errors import InputError, SegZeroError


def publish_frames(
    frames: Iterable[np.ndarray],
    topic: str,
    *,
    fps: float,
    domain_id: int | None = None,
    frame_id: str = "camera",
    encoding: str = "rgb8",
    seconds: float | None = None,
    count: int | None = None,
    wait_for_subscriber_s: float = 0.0,
) -> list[tuple[int, int]]:
    """Publish ``(H, W, 3)`` uint8 RGB ``frames`` on ``topic`` at ``fps`` (cycled) until ``seconds`` or
    ``count``; returns the stamps published. ``wait_for_subscriber_s``: first wait up to this long for a
    subscriber to match (frames published before discovery completes are lost, as on a real network)."""
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.topic import Topic

    from . import wire

    if encoding not in ("rgb8", "bgr8"):
        raise InputError(f"encoding {encoding!r}", hint="use rgb8 or bgr8")
    if fps <= 0:
        raise InputError(f"fps must be > 0, got {fps}")
    dp = DomainParticipant(domain_id) if domain_id is not None else DomainParticipant()
    writer = DataWriter(dp, Topic(dp, wire.dds_topic(topic), wire.Image), qos=wire.SENSOR_QOS)
    deadline = time.monotonic() + wait_for_subscriber_s
    while time.monotonic() < deadline and writer.get_publication_matched_status().current_count == 0:
        time.sleep(0.05)
    stamps: list[tuple[int, int]] = []
    period, start = 1.0 / fps, time.monotonic()
    for i, rgb in enumerate(itertools.cycle(frames)):
        if (count is not None and i >= count) or (seconds is not None and time.monotonic() - start >= seconds):
            break
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time_ns()
        stamp = (now // 1_000_000_000, now % 1_000_000_000)
        pixels = np.ascontiguousarray(rgb[..., ::-1] if encoding == "bgr8" else rgb)
        h, w = pixels.shape[:2]
        writer.write(wire.Image(wire.header(stamp, frame_id), h, w, encoding, 0, w * 3, pixels.tobytes()))
        stamps.append(stamp)
    time.sleep(0.2)  # let the last samples leave before the participant goes away
    return stamps


def main(argv: list[str] | None = None) -> int:
    from ..video import open_frames

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a video file or a folder of images (loaded into memory, then looped)")
    p.add_argument("--topic", default="/camera/image_raw")
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: one pass)")
    p.add_argument("--count", type=int, default=None, help="stop after this many frames")
    p.add_argument("--encoding", default="rgb8", choices=["rgb8", "bgr8"])
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--domain-id", type=int, default=None)
    p.add_argument("--wait-for-subscriber", type=float, default=10.0, metavar="S", help="wait up to S seconds for one")
    p.add_argument("--print-stamps", action="store_true", help="also list every stamp published in the JSON line")
    args = p.parse_args(argv)
    try:
        with open_frames(args.source) as source:
            frames = [rgb for _, _, rgb in source]
        if not frames:
            raise InputError(f"{args.source} has no frames")
        count = args.count if args.count is not None or args.seconds is not None else len(frames)
        stamps = publish_frames(
            frames,
            args.topic,
            fps=args.fps,
            domain_id=args.domain_id,
            frame_id=args.frame_id,
            encoding=args.encoding,
            seconds=args.seconds,
            count=count,
            wait_for_subscriber_s=args.wait_for_subscriber,
        )
    except SegZeroError as exc:
        print(f"replay: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    span = (stamps[-1][0] - stamps[0][0]) + (stamps[-1][1] - stamps[0][1]) * 1e-9 if len(stamps) > 1 else 0.0
    rate = (len(stamps) - 1) / span if span > 0 else 0.0
    summary = {"published": len(stamps), "fps": round(rate, 2)}
    print(json.dumps({**summary, "stamps": stamps} if args.print_stamps else summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
