"""The live ROS 2 node under a camera stream: latency per frame and frames dropped at 5 to 120 fps input.

    .venv/bin/python benchmarks/bench_ros_node.py --seconds 20 --out benchmarks/results/ros_node_world

The default rates: 5, 15 and 30 fps are camera rates; 60 and 120 fps are faster than the node on this
machine, to show it drops frames instead of queueing them (its latency and the masks' age stay flat).

Per rate, three processes talk over the loopback interface only (Cyclone DDS, unicast discovery on
127.0.0.1): ``python -m segzero_edge.ros.replay`` publishes the world demo clip (448 x 448 rgb8, looped) as
``sensor_msgs/Image`` with the sensor-data QoS, stamped with the wall clock; ``segzero-edge serve --ros2``
tracks the demo instruction on the world engine (reasoning on its first frame, then the tracker); this
process subscribes to the masks. Reported per rate:

* sent: frames the camera published; received: frames the node took from the wire (the rest were lost in
  transit or overwritten in the reader's keep-last-5 history before the node looked);
* waiting: frames taken before the first answer (the reasoning), dropped: frames skipped because a newer one
  was waiting (the node never queues), published: masks published (= received - waiting - dropped);
* node latency: from taking the message to publishing its mask (decode, track, encode, write);
* age: from the camera's stamp to this subscriber receiving the mask (what a consumer sees).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segzero_edge.evaluation.latency import cpu_model, cpu_simd

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "/camera/image_raw"


def _engine(args) -> Path:
    if args.engine is not None:
        return args.engine
    from segzero_edge.world.demo import export_world_engine

    return export_world_engine(args.work / "engine_world_int4", "int4")[0]


def run_rate(engine: Path, folder: Path, text: str, fps: float, args, tmp: Path) -> dict:
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from segzero_edge.ros import wire

    env = {**os.environ, "CYCLONEDDS_URI": wire.LOOPBACK_CONFIG}
    os.environ["CYCLONEDDS_URI"] = wire.LOOPBACK_CONFIG
    domain = random.randint(1, 200)
    stats_path = tmp / f"stats_{fps}.json"
    dp = DomainParticipant(domain)
    masks = DataReader(dp, Topic(dp, wire.dds_topic(TOPIC + "/mask"), wire.Image), qos=wire.RESULT_QOS)
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segzero_edge",
            "serve",
            str(engine),
            "--ros2",
            "--image-topic",
            TOPIC,
            "--text",
            text,
            "--domain-id",
            str(domain),
            "--stats",
            str(stats_path),
            "--threads",
            str(args.threads),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(args.startup)  # the node loads its engine and subscribes
    camera = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segzero_edge.ros.replay",
            str(folder),
            "--topic",
            TOPIC,
            "--fps",
            str(fps),
            "--seconds",
            str(args.seconds),
            "--domain-id",
            str(domain),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ages = []
    while camera.poll() is None:
        for m in wire.valid(masks.take(N=256)):
            ages.append(time.time() - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9))
        time.sleep(0.002)
    time.sleep(1.0)
    for m in wire.valid(masks.take(N=256)):
        ages.append(time.time() - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9))
    node.send_signal(signal.SIGINT)
    _node_out, node_err = node.communicate(timeout=60)
    cam_out, cam_err = camera.communicate()
    if camera.returncode != 0 or not stats_path.exists():
        raise RuntimeError(f"run at {fps} fps failed:\n{cam_err[-2000:]}\n{node_err[-3000:]}")
    sent = json.loads(cam_out.strip().splitlines()[-1])
    stats = json.loads(stats_path.read_text())
    ages_ms = 1e3 * np.asarray(ages)
    return {
        "fps_in": fps,
        "fps_sent": sent["fps"],
        "sent": sent["published"],
        **stats,
        "masks_received": len(ages),
        "age_ms_p50_subscriber": round(float(np.percentile(ages_ms, 50)), 2) if len(ages) else None,
        "age_ms_p90_subscriber": round(float(np.percentile(ages_ms, 90)), 2) if len(ages) else None,
        "fps_out": round(len(ages) / args.seconds, 2),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# ROS 2 node under a camera stream, {report['cpu']} ({report['threads']} threads)",
        "",
        f"World engine (INT4 reasoner, SAM2 + tracker), {report['text']!r}, 448 x 448 rgb8 frames for "
        f"{report['seconds']} s per rate over loopback Cyclone DDS. Command: `{report['command']}`",
        "",
        "| input fps | sent | received by node | waiting (reasoning) | dropped | published | node latency p50 / p90 ms "
        "| age at subscriber p50 / p90 ms | output fps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['fps_in']:g} | {r['sent']} | {r['received']} | {r['waiting']} | {r['dropped']} | {r['published']} | "
            f"{r['latency_ms_p50']} / {r['latency_ms_p90']} | {r['age_ms_p50_subscriber']} / "
            f"{r['age_ms_p90_subscriber']} | {r['fps_out']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", type=float, nargs="+", default=[5.0, 15.0, 30.0, 60.0, 120.0])
    p.add_argument("--seconds", type=float, default=20.0, help="camera stream length per rate")
    p.add_argument("--startup", type=float, default=5.0, help="seconds the node gets to load before the camera")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--engine", type=Path, default=None, help="engine directory (default: export the world engine)")
    p.add_argument("--work", type=Path, default=ROOT / ".cache" / "demo", help="where the world engine is kept")
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = p.parse_args()
    from PIL import Image

    from segzero_edge.world import ASSETS
    from segzero_edge.world.clips import demo_clip

    text = json.loads((ASSETS / "demo_scene.json").read_text())["text"]
    engine = _engine(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for i, rgb in enumerate(demo_clip(30).frames):
            Image.fromarray(rgb).save(folder / f"{i}.png")
        results = []
        for fps in args.rates:
            results.append(run_rate(engine, folder, text, fps, args, Path(tmp)))
            print(json.dumps(results[-1]), file=sys.stderr)
    report = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "simd": cpu_simd(),
        "threads": args.threads,
        "seconds": args.seconds,
        "text": text,
        "command": "python benchmarks/bench_ros_node.py " + " ".join(sys.argv[1:]),
        "results": results,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
