"""``segzero-edge track/predict`` on real ROS bags (written here with rosbags), results read back from MCAP."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("rosbags", reason="needs the ros extra (rosbags)")
pytest.importorskip("mcap_ros2", reason="needs the ros extra (mcap-ros2-support)")

from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

CLI = [sys.executable, "-m", "segzero_edge"]
TOPIC = "/cam/image_raw"
TS2 = get_typestore(Stores.ROS2_HUMBLE)
TS1 = get_typestore(Stores.ROS1_NOETIC)


def _stamp(i: int) -> tuple[int, int]:
    return 1700 + i // 10, (i % 10) * 100_000_000 + 7


def _message(ts, rgb: np.ndarray, i: int, kind: str, ros1: bool = False):
    t = ts.types["builtin_interfaces/msg/Time"](sec=_stamp(i)[0], nanosec=_stamp(i)[1])
    extra = {"seq": i} if ros1 else {}
    header = ts.types["std_msgs/msg/Header"](stamp=t, frame_id=f"cam_{kind}", **extra)
    if kind == "jpeg":
        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, "JPEG", quality=95)
        data = np.frombuffer(buf.getvalue(), np.uint8)
        return ts.types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg", data=data)
    pixels = rgb[..., ::-1] if kind == "bgr8" else rgb
    if kind == "16UC1":
        pixels = np.zeros((*rgb.shape[:2], 2), np.uint8)
    h, w = rgb.shape[:2]
    return ts.types["sensor_msgs/msg/Image"](
        header=header,
        height=h,
        width=w,
        encoding=kind,
        is_bigendian=0,
        step=w * pixels.shape[2],
        data=np.ascontiguousarray(pixels).reshape(-1),
    )


def write_bag(path: Path, frames, kind: str, *, storage: str = "mcap", extra_topics=()) -> Path:
    """A bag of ``frames`` on TOPIC as ``kind`` (rgb8, bgr8, jpeg, 16UC1); storage mcap, sqlite3 or ros1."""
    if storage == "ros1":
        with Writer1(path) as w:
            conn = w.add_connection(TOPIC, "sensor_msgs/msg/Image", typestore=TS1)
            for i, rgb in enumerate(frames):
                w.write(
                    conn,
                    int(1e9 * (1700 + i / 10)),
                    TS1.serialize_ros1(_message(TS1, rgb, i, kind, True), conn.msgtype),
                )
        return path
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer2(path, version=9, storage_plugin=plugin) as w:
        msgtype = "sensor_msgs/msg/CompressedImage" if kind == "jpeg" else "sensor_msgs/msg/Image"
        conn = w.add_connection(TOPIC, msgtype, typestore=TS2)
        others = [w.add_connection(t, m, typestore=TS2) for t, m in extra_topics]
        for i, rgb in enumerate(frames):
            w.write(conn, int(1e9 * (1700 + i / 10)), TS2.serialize_cdr(_message(TS2, rgb, i, kind), msgtype))
        for c in others:
            if c.msgtype == "std_msgs/msg/String":
                w.write(c, int(1e9 * 1700), TS2.serialize_cdr(TS2.types[c.msgtype](data="x"), c.msgtype))
            else:
                w.write(c, int(1e9 * 1700), TS2.serialize_cdr(_message(TS2, frames[0], 0, "rgb8"), c.msgtype))
    return path


def read_results(path: Path) -> tuple[list, list]:
    """(mask messages, result dicts) of an output MCAP, read back with rosbags; checks that each frame also
    has its annotations (stamped as the mask; the schema comes from the file)."""
    out: dict[str, list] = {"mask": [], "result": [], "annotations": []}
    with AnyReader([path], default_typestore=TS2) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            f"{TOPIC}/mask": "sensor_msgs/msg/Image",
            f"{TOPIC}/result": "std_msgs/msg/String",
            f"{TOPIC}/annotations": "foxglove_msgs/msg/ImageAnnotations",
        }
        for conn, _, raw in reader.messages():
            out[conn.topic.rsplit("/", 1)[1]].append(reader.deserialize(raw, conn.msgtype))
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in out["mask"]]
    assert [(a.texts[0].timestamp.sec, a.texts[0].timestamp.nanosec) for a in out["annotations"]] == stamps
    return out["mask"], [json.loads(r.data) for r in out["result"]]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--threads", "2"], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("kind", "storage"), [("bgr8", "mcap"), ("jpeg", "sqlite3"), ("rgb8", "ros1")])
def test_track_a_bag_writes_stamped_masks_and_answers_the_api_agrees_with(
    tmp_path, ros_engine, demo_frames, kind, storage
):
    from segzero_edge import Segmenter
    from segzero_edge.ros.bag import BagSource

    frames, text = demo_frames
    bag = write_bag(tmp_path / ("in.bag" if storage == "ros1" else "in_bag"), frames, kind, storage=storage)
    out = tmp_path / "res" / "result.mcap"
    done = _run("track", str(ros_engine), str(bag), "--topic", TOPIC, text, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"frames    : {len(frames)} in" in done.stdout and "frame/s" in done.stderr
    masks, results = read_results(out)
    assert len(masks) == len(results) == len(frames)
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks] == [_stamp(i) for i in range(len(frames))]
    assert {m.header.frame_id for m in masks} == {f"cam_{kind}"} == {r["frame_id"] for r in results}
    assert [(r["stamp"]["sec"], r["stamp"]["nanosec"]) for r in results] == [_stamp(i) for i in range(len(frames))]
    assert all(m.encoding == "mono8" and (m.height, m.width) == frames[0].shape[:2] for m in masks)
    # The same frames through the API: the bag's masks are those of Segmenter.track.
    with BagSource(bag, TOPIC) as source, Segmenter(ros_engine, device="cpu", threads=2) as seg:
        decoded = [f.rgb for f in source]
        track = seg.track(decoded[0], text)
        expected = [track.last] + [track.update(f) for f in decoded[1:]]
        track.close()
    for m, r, e in zip(masks, results, expected, strict=True):
        got = np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width)
        assert np.array_equal(got > 0, e.mask) and set(np.unique(got)) <= {0, 255}
        assert r["found"] == e.found and len(r["objects"]) == len(e.objects)
    assert results[0]["reasoning"] and len(results[0]["answer"]) == 1 and len(results[0]["answer"][0]["box"]) == 4
    assert all(r["answer"] is None for r in results[1:])  # one reasoning, then the tracker alone
    assert sum(r["found"] for r in results) >= len(frames) // 2  # the trained world engine follows its target
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_predict_every_nth_frame_of_a_bag(tmp_path, ros_engine, demo_frames):
    frames, text = demo_frames
    bag = write_bag(tmp_path / "in_bag", frames, "rgb8")
    out = tmp_path / "p.mcap"
    done = _run("predict", str(ros_engine), str(bag), text, "--every", "4", "--out", str(out))
    assert done.returncode == 0, done.stderr
    masks, results = read_results(out)
    assert [r["frame"] for r in results] == [0, 4, 8]
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks] == [_stamp(i) for i in (0, 4, 8)]
    assert all(r["reasoning"] and r["answer"] for r in results)  # predict reasons on every frame it segments


def test_bad_bags_and_options_get_one_line_errors_and_write_nothing(tmp_path, ros_engine, demo_frames):
    frames, text = demo_frames
    two = write_bag(tmp_path / "two", frames[:2], "rgb8", extra_topics=[("/other/image", "sensor_msgs/msg/Image")])
    strings = write_bag(tmp_path / "strings", frames[:2], "rgb8", extra_topics=[("/chatter", "std_msgs/msg/String")])
    depth = write_bag(tmp_path / "depth", frames[:2], "16UC1")
    out = tmp_path / "o" / "r.mcap"
    cases = [
        (["track", str(ros_engine), str(two), text, "--out", str(out)], "2 image topics"),
        (["track", str(ros_engine), str(two), "--topic", "/nope", text], "no topic '/nope'"),
        (["track", str(ros_engine), str(strings), "--topic", "/chatter", text], "not an image"),
        (["track", str(ros_engine), str(depth), text, "--out", str(out)], "depth or 16-bit"),
        (["track", str(ros_engine), str(strings), text, "--out", str(tmp_path / "o" / "r.mp4")], "MCAP"),
        (["track", str(ros_engine), str(strings), text, "--out", str(strings / "r.mcap")], "input bag"),
        (["predict", str(ros_engine), str(strings), text, "--every", "0"], "--every"),
        (["track", str(ros_engine), str(tmp_path), text, "--topic", TOPIC], "not one"),
    ]
    for args, says in cases:
        done = _run(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, (says, done.stderr)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    assert sorted(p.name for p in strings.iterdir()) == ["metadata.yaml", "strings.mcap"]
