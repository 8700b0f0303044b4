"""``segzero-edge serve --ros2`` across processes on the loopback interface only: a replayed camera publishes
``sensor_msgs/Image`` with the sensor-data QoS, the node tracks the instruction it receives on its topic, and
this test subscribes to the masks and answers with its own declaration of the ROS 2 types (the DDS names
``rmw_cyclonedds`` uses), checking they arrive in order with the camera's stamps."""

# No ``from __future__ import annotations``: cyclonedds resolves the field annotations at class creation.
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("cyclonedds", reason="needs the ros extra (cyclonedds)")

from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import int32, sequence, uint8, uint32
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from segzero_edge.ros.wire import LOOPBACK_CONFIG  # nothing leaves the machine

CLI = [sys.executable, "-m", "segzero_edge"]


# A ROS 2 subscriber's view of the types (rosidl's DDS names), declared here independently of segzero_edge.
@dataclass
class Time_(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header_(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time_
    frame_id: str


@dataclass
class Image_(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header_
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


@dataclass
class String_(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


#: rclcpp's default subscription QoS (reliable, volatile, keep last 10), deeper so the test misses nothing.
RELIABLE = Qos(Policy.Reliability.Reliable(duration(milliseconds=100)), Policy.History.KeepLast(100))


@pytest.fixture()
def loopback(monkeypatch):
    monkeypatch.setenv("CYCLONEDDS_URI", LOOPBACK_CONFIG)
    return {**os.environ, "CYCLONEDDS_URI": LOOPBACK_CONFIG}


def test_node_tracks_a_camera_topic_and_publishes_stamped_masks_in_order(tmp_path, ros_engine, demo_frames, loopback):
    frames, text = demo_frames
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, rgb in enumerate(frames):
        PILImage.fromarray(rgb).save(folder / f"{i}.png")
    domain = random.randint(1, 200)
    wanted = 8
    dp = DomainParticipant(domain)
    masks_in = DataReader(dp, Topic(dp, "rt/cam/image_raw/mask", Image_), qos=RELIABLE)
    results_in = DataReader(dp, Topic(dp, "rt/cam/image_raw/result", String_), qos=RELIABLE)
    say = DataWriter(dp, Topic(dp, "rt/segzero/instruction", String_), qos=RELIABLE)
    stats_path = tmp_path / "stats.json"
    serve = ["serve", str(ros_engine), "--ros2", "--image-topic", "/cam/image_raw", "--domain-id", str(domain)]
    node = subprocess.Popen(
        [*CLI, *serve, "--max-frames", str(wanted), "--stats", str(stats_path), "--threads", "2"],
        env=loopback,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    replay = [sys.executable, "-m", "segzero_edge.ros.replay", str(folder), "--topic", "/cam/image_raw", "--fps", "10"]
    camera = subprocess.Popen(
        [*replay, "--seconds", "25", "--domain-id", str(domain), "--frame-id", "cam_optical", "--print-stamps"],
        env=loopback,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while say.get_publication_matched_status().current_count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the node subscribes to its instruction topic once its engine is loaded
        assert say.get_publication_matched_status().current_count == 1, node.stderr.read() if node.poll() else ""
        say.write(String_(text))  # `ros2 topic pub --once /segzero/instruction std_msgs/msg/String ...`
        masks, results = [], []
        while len(masks) < wanted and time.monotonic() < deadline:
            masks += [m for m in masks_in.take(N=100) if isinstance(m, Image_)]
            results += [r for r in results_in.take(N=100) if isinstance(r, String_)]
            time.sleep(0.05)
        node_out, node_err = node.communicate(timeout=60)
        results += [r for r in results_in.take(N=100) if isinstance(r, String_)]
        cam_out, cam_err = camera.communicate(timeout=60)
    finally:
        for p in (node, camera):
            if p.poll() is None:
                p.kill()
    assert node.returncode == 0, node_err
    assert camera.returncode == 0, cam_err
    published = [tuple(s) for s in json.loads(cam_out.strip().splitlines()[-1])["stamps"]]
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks]
    assert len(masks) == len(results) == wanted
    assert stamps == sorted(stamps) and len(set(stamps)) == wanted  # in order, no repeats
    assert set(stamps) <= set(published)  # each mask carries the stamp of the camera frame it is for
    assert [(r["stamp"]["sec"], r["stamp"]["nanosec"]) for r in map(json.loads, (r.data for r in results))] == stamps
    assert {m.header.frame_id for m in masks} == {"cam_optical"}
    assert all((m.height, m.width, m.encoding) == (448, 448, "mono8") for m in masks)
    found = [np.frombuffer(bytes(m.data), np.uint8).any() for m in masks]
    assert sum(found) >= wanted // 2  # the trained world engine finds and follows its target
    stats = json.loads(stats_path.read_text())
    assert stats["published"] == wanted and stats["waiting"] >= 1  # frames before the instruction's answer
    assert stats["received"] == stats["published"] + stats["dropped"] + stats["waiting"]
    assert stats["latency_ms_p50"] > 0 and "serving" in node_out


def test_serve_refuses_bad_setups_in_one_line(tmp_path, ros_engine):
    cases = [
        (["serve", str(ros_engine), "--image-topic", "/cam"], "--ros2"),
        (["serve", str(ros_engine), "--ros2", "--image-topic", "/cam//x"], "ROS 2 topic name"),
        (["serve", str(ros_engine), "--ros2", "--image-topic", "/cam", "--text", "  "], "empty"),
        (["serve", str(ros_engine), "--ros2", "--image-topic", "/cam", "--domain-id", "999"], "0..232"),
    ]
    for args, says in cases:
        done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
