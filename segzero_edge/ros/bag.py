"""ROS bags in and out: camera frames from ROS 1 / ROS 2 bags, results to an MCAP file.

Reading uses ``rosbags`` (pure Python, no ROS install): one ``AnyReader`` opens ROS 2 bag folders (MCAP or
sqlite3 storage), bare ``.mcap`` / ``.db3`` files and ROS 1 ``.bag`` files, and deserialises CDR and ROS 1
messages into dataclasses with the ROS field names. Writing uses ``mcap-ros2-support``, the MCAP reference
implementation's ROS 2 profile, because the result is one self-describing ``.mcap`` file (schemas inside)
that Foxglove opens directly and ``ros2 bag play`` plays (ROS 2 Iron and later read MCAP without a plugin);
the message definitions it embeds come from ``rosbags``' typestore, so they are the stock ROS 2 ones.

Output topics, for an input topic ``T``:

* ``T/mask``: ``sensor_msgs/msg/Image`` ``mono8`` at the frame's size (``messages.mask_image``);
* ``T/result``: ``std_msgs/msg/String`` with the answer as JSON (``messages.result_json``);
* ``T/annotations``: ``foxglove_msgs/msg/ImageAnnotations``, boxes, points and labels that Foxglove's Image
  panel draws over the camera image (``annotations.py``).

All carry the input frame's header stamp and ``frame_id`` (in the JSON for the string) and are logged at
the input message's log time, so a player replays them in step with the camera.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, missing_extra
from .annotations import IMAGE_ANNOTATIONS, image_annotations
from .annotations import MSGDEF as ANNOTATIONS_MSGDEF
from .messages import IMAGE, IMAGE_TYPES, STRING, mask_fields, mask_image, result_json, stamp_of, to_rgb

BAG_SUFFIXES = (".bag", ".mcap", ".db3")
OUT_SUFFIX = ".mcap"


def is_bag(path: str | os.PathLike[str]) -> bool:
    """True for a ROS 1 ``.bag``, an ``.mcap`` or ``.db3`` file, or a ROS 2 bag folder (``metadata.yaml``)."""
    p = Path(path)
    return (p.is_file() and p.suffix.lower() in BAG_SUFFIXES) or (p.is_dir() and (p / "metadata.yaml").is_file())


def _rosbags():
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:
        raise missing_extra("reading ROS bags", "ros", cause=exc) from exc
    return AnyReader, get_typestore(Stores.ROS2_HUMBLE)


@dataclass(frozen=True)
class BagFrame:
    """One camera frame of a bag.

    Attributes:
        index: position among the topic's messages (0-based; with ``every`` > 1 the skipped ones count).
        time_s: seconds since the topic's first message (log time).
        rgb: ``(H, W, 3)`` uint8.
        stamp: ``(sec, nanosec)`` of the message header.
        frame_id: the header's ``frame_id``.
        log_time_ns: the bag's log time of the message.
    """

    index: int
    time_s: float
    rgb: np.ndarray
    stamp: tuple[int, int]
    frame_id: str
    log_time_ns: int


class BagSource:
    """The frames of one image topic of a bag, in log-time order (``for frame in source``)."""

    def __init__(self, path: str | os.PathLike[str], topic: str | None = None, *, every: int = 1) -> None:
        if every < 1:
            raise InputError(f"every must be >= 1, got {every}")
        any_reader, typestore = _rosbags()
        self.path = Path(path)
        self.every = every
        try:
            self._reader = any_reader([self.path], default_typestore=typestore)
            self._reader.open()
        except Exception as exc:  # rosbags raises its own error types per format
            raise InputError(f"cannot read the bag {self.path}: {exc}", hint="pass a ROS 1 or ROS 2 bag") from exc
        try:
            self._connections = self._pick(topic)
        except BaseException:
            self._reader.close()
            raise
        self.topic = self._connections[0].topic
        self.msgtype = self._connections[0].msgtype
        self.count = sum(c.msgcount for c in self._connections)
        self.name = f"{self.path}:{self.topic}"

    def _pick(self, topic: str | None) -> list[Any]:
        images = sorted({c.topic: c.msgtype for c in self._reader.connections if c.msgtype in IMAGE_TYPES}.items())
        listing = ", ".join(f"{t} ({m.rsplit('/', 1)[-1]})" for t, m in images) or "none"
        if topic is None:
            if len(images) != 1:
                raise InputError(
                    f"{self.path} has {len(images)} image topics: {listing}", hint="choose one with --topic"
                )
            topic = images[0][0]
        connections = [c for c in self._reader.connections if c.topic == topic]
        if not connections:
            raise InputError(f"{self.path} has no topic {topic!r}; its image topics: {listing}", hint="fix --topic")
        if connections[0].msgtype not in IMAGE_TYPES:
            raise InputError(
                f"topic {topic} carries {connections[0].msgtype}, not an image; image topics: {listing}",
                hint="pass a sensor_msgs/Image or CompressedImage topic with --topic",
            )
        return connections

    def __iter__(self) -> Iterator[BagFrame]:
        start = None
        for i, (conn, log_time, raw) in enumerate(self._reader.messages(connections=self._connections)):
            start = log_time if start is None else start
            if i % self.every:
                continue
            msg = self._reader.deserialize(raw, conn.msgtype)
            rgb = to_rgb(msg, conn.msgtype)
            yield BagFrame(i, (log_time - start) / 1e9, rgb, stamp_of(msg), str(msg.header.frame_id), log_time)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResultBagWriter:
    """Writes masks and answers for frames of ``topic`` into one MCAP file (see the module docstring)."""

    def __init__(self, path: Path, topic: str) -> None:
        try:
            from mcap_ros2.writer import Writer
        except ImportError as exc:
            raise missing_extra("writing MCAP bags", "ros", cause=exc) from exc
        _, typestore = _rosbags()
        self.path = Path(path)
        self.mask_topic = f"{topic.rstrip('/')}/mask"
        self.result_topic = f"{topic.rstrip('/')}/result"
        self.annotations_topic = f"{topic.rstrip('/')}/annotations"
        self._file = self.path.open("wb")
        self._writer = Writer(self._file)
        msgdef = {t: typestore.generate_msgdef(t, ros_version=2)[0] for t in (IMAGE, STRING)}
        msgdef[IMAGE_ANNOTATIONS] = ANNOTATIONS_MSGDEF
        self._schemas = {t: self._writer.register_msgdef(t, text) for t, text in msgdef.items()}
        self._seq = 0
        self.written = 0

    def write(self, frame: BagFrame, res: Any) -> None:
        """The mask, the answer and the annotations of ``res`` (a ``Segmentation`` of ``frame``)."""
        h, w = frame.rgb.shape[:2]
        masks = np.stack([o.mask for o in res.objects]) if res.objects else np.zeros((0, h, w), bool)
        header = {"stamp": {"sec": frame.stamp[0], "nanosec": frame.stamp[1]}, "frame_id": frame.frame_id}
        image = {"header": header, **mask_fields(mask_image(masks, (w, h)))}
        text = result_json(res, stamp=frame.stamp, frame_id=frame.frame_id, frame=frame.index)
        for topic, schema, message in (
            (self.mask_topic, self._schemas[IMAGE], image),
            (self.result_topic, self._schemas[STRING], {"data": text}),
            (self.annotations_topic, self._schemas[IMAGE_ANNOTATIONS], image_annotations(res, frame.stamp)),
        ):
            self._writer.write_message(
                topic, schema, message, log_time=frame.log_time_ns, publish_time=frame.log_time_ns, sequence=self._seq
            )
        self._seq += 1
        self.written += 1

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._writer.finish()
        finally:
            self._file.close()
