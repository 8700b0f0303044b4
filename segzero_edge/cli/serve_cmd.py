"""``segzero-edge serve ENGINE_DIR --ros2 --image-topic T --text "..."``: a live node on the ROS 2 wire."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import InputError
from .base import DEVICE_HELP, Command, positive_int
from .options import add_option_arguments, option_values

OPTIONS = ("max_new_tokens", "thinking_budget", "constrained", "max_objects", "seed")


def _domain(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a DDS domain number (0..232)") from None


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine_dir", type=Path, help="engine directory with the reasoner, sam2 and tracker components")
    parser.add_argument(
        "--ros2",
        action="store_true",
        help="serve on the ROS 2 DDS wire (Cyclone DDS, the same wire rclcpp/rclpy nodes use; no ROS install needed)",
    )
    parser.add_argument("--image-topic", required=True, help="camera topic to subscribe to, e.g. /camera/image_raw")
    parser.add_argument(
        "--compressed",
        action="store_true",
        help="the topic carries sensor_msgs/CompressedImage (e.g. /camera/image_raw/compressed)",
    )
    parser.add_argument("--text", default=None, help="instruction to track from the start (else wait for --text-topic)")
    parser.add_argument(
        "--text-topic",
        default="/segzero/instruction",
        help="std_msgs/String topic that sets a new instruction at run time (default: %(default)s)",
    )
    parser.add_argument(
        "--domain-id",
        type=_domain,
        default=None,
        help="DDS domain (default: $ROS_DOMAIN_ID, else 0), as ROS_DOMAIN_ID for ROS 2 nodes",
    )
    parser.add_argument(
        "--reason-after-lost",
        type=int,
        default=15,
        metavar="K",
        help="re-reason in the background after K frames with the object lost; 0: never (default: %(default)s)",
    )
    parser.add_argument("--max-frames", type=positive_int, default=None, help="stop after publishing this many frames")
    parser.add_argument("--stats", type=Path, default=None, help="write the final statistics here as JSON")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per ONNX Runtime session")
    add_option_arguments(parser, OPTIONS)


def _run(args: argparse.Namespace) -> int:
    from ..files import writable_parent
    from ..segmenter import Segmenter

    if not args.ros2:
        raise InputError("serve needs a transport", hint="add --ros2 (the only one so far)")
    stats_path = writable_parent(args.stats) if args.stats is not None else None
    domain = args.domain_id
    if domain is None and os.environ.get("ROS_DOMAIN_ID", "").strip():
        domain = _domain(os.environ["ROS_DOMAIN_ID"].strip())
    from ..ros.node import NodeConfig, Ros2Node

    config = NodeConfig(
        image_topic=args.image_topic,
        compressed=args.compressed,
        text=args.text,
        text_topic=args.text_topic,
        domain_id=domain,
        reason_after_lost=args.reason_after_lost,
        max_frames=args.max_frames,
    )
    with Segmenter(args.engine_dir, device=args.device, threads=args.threads, **option_values(args, OPTIONS)) as seg:
        node = Ros2Node(seg, config)
        outs = f"{config.mask_topic}, {config.result_topic}, {config.annotations_topic}"
        print(f"serving   : {config.image_topic} -> {outs} (Ctrl-C stops)")
        interrupted = False
        try:
            node.spin()
        except KeyboardInterrupt:
            interrupted = True
        summary = node.stats.summary()
    print("stats     : " + json.dumps(summary))
    if stats_path is not None:
        stats_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 130 if interrupted else 0


COMMAND = Command(
    name="serve",
    add_arguments=_add_arguments,
    run=_run,
    description="Track an instruction live on a ROS 2 image topic (sensor_msgs/Image or CompressedImage) and publish "
    "a mono8 mask (TOPIC/mask) and a JSON answer (TOPIC/result) for every frame, stamped as the frame. Frames that "
    "arrive while one is processed are dropped, never queued; reasoning runs in the background while tracking "
    "publishes. Speaks the ROS 2 DDS wire through Cyclone DDS: no ROS install needed.",
)
