"""A live segmentation node on the ROS 2 wire: camera frames in, masks and answers out, every frame.

    node = Ros2Node(seg, NodeConfig(image_topic="/camera/image_raw", text="the cup"))
    node.spin(stop_event)           # until stop_event is set (or max_frames)

Per frame the node takes the **newest** image and drops the older ones waiting behind it, so when tracking
is slower than the camera it falls behind by at most one frame instead of queueing (the drop count says
how many were skipped). Subscriptions use the sensor-data QoS (best effort, keep last 5), publications the
default reliable QoS (``wire.py``).

Reasoning never blocks the stream once a track runs. A new instruction (``NodeConfig.text`` at start, or a
``std_msgs/String`` on ``text_topic`` at run time) starts ``Segmenter.track`` on the newest frame on a
background thread; meanwhile the current track (if any) goes on publishing every frame, and when the new
track is ready it replaces the old one from the next frame on. Before the first track exists, frames are
consumed and counted as ``waiting`` (nothing is published for them). Inside a track, re-reasoning after
``reason_after_lost`` lost frames runs in the background too (``Track``).

Outputs for image topic ``T`` (same as the bag writer): ``T/mask`` (``sensor_msgs/Image`` mono8, the frame's
header), ``T/result`` (``std_msgs/String`` JSON with the frame's stamp, boxes, points, scores, reasoning) and
``T/annotations`` (``foxglove_msgs/ImageAnnotations``, drawn by Foxglove over the image).

Threads: ``spin`` runs the frame loop on the calling thread; ``stop`` and ``set_text`` may be called from
any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, SegZeroError
from . import wire
from .annotations import image_annotations
from .messages import COMPRESSED_IMAGE, IMAGE, mask_fields, mask_image, result_json, stamp_of, to_rgb

log = logging.getLogger(__name__)

#: Latencies kept for the statistics (a sliding window: memory stays constant on an endless stream).
LATENCY_WINDOW = 10_000
#: Seconds between two statistics lines in the log.
LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class NodeConfig:
    """What the node subscribes to and publishes.

    Attributes:
        image_topic: ROS 2 topic of the camera frames (``/camera/image_raw``).
        compressed: the topic carries ``sensor_msgs/CompressedImage`` (else ``sensor_msgs/Image``).
        text: the instruction to start with (None: wait for one on ``text_topic``).
        text_topic: ``std_msgs/String`` topic that sets the instruction at run time.
        domain_id: DDS domain (``ROS_DOMAIN_ID``; None: Cyclone DDS's default, 0 or ``$ROS_DOMAIN_ID``).
        reason_after_lost: frames with the object lost before re-reasoning in the background (0: never).
        max_frames: stop after publishing this many frames (None: run until stopped).
    """

    image_topic: str
    compressed: bool = False
    text: str | None = None
    text_topic: str = "/segzero/instruction"
    domain_id: int | None = None
    reason_after_lost: int = 15
    max_frames: int | None = None

    def __post_init__(self) -> None:
        for name in (self.image_topic, self.text_topic):
            wire.dds_topic(name)  # raises InputError for a bad name
        if self.text is not None and not self.text.strip():
            raise InputError("the instruction is empty", hint='pass --text "the cup"')
        if self.reason_after_lost < 0 or (self.max_frames is not None and self.max_frames < 1):
            raise InputError("reason_after_lost must be >= 0 and max_frames >= 1")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise InputError(f"DDS domain {self.domain_id} out of range", hint="ROS_DOMAIN_ID is 0..232")

    @property
    def mask_topic(self) -> str:
        return self.image_topic.rstrip("/") + "/mask"

    @property
    def result_topic(self) -> str:
        return self.image_topic.rstrip("/") + "/result"

    @property
    def annotations_topic(self) -> str:
        return self.image_topic.rstrip("/") + "/annotations"


@dataclass
class NodeStats:
    """Counters and per-frame latencies (milliseconds) of a node.

    Attributes:
        received: image messages taken from the wire.
        published: frames whose mask and result were published.
        dropped: frames skipped because a newer one was waiting (the node never queues), and frames that
            could not be decoded (logged).
        waiting: frames received before the first track existed (nothing published for them).
        latency_ms: per published frame (the last ``LATENCY_WINDOW``), from taking the message to publishing its result.
        age_ms: per published frame, from the header stamp to publishing (needs the publisher's clock to be
            this machine's, as for a local camera driver stamping with the system clock).
    """

    received: int = 0
    published: int = 0
    dropped: int = 0
    waiting: int = 0
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    age_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def summary(self) -> dict:
        def pct(v: deque[float], q: float) -> float | None:
            return round(float(np.percentile(list(v), q)), 2) if v else None

        return {
            "received": self.received,
            "published": self.published,
            "dropped": self.dropped,
            "waiting": self.waiting,
            "latency_ms_p50": pct(self.latency_ms, 50),
            "latency_ms_p90": pct(self.latency_ms, 90),
            "age_ms_p50": pct(self.age_ms, 50),
            "age_ms_p90": pct(self.age_ms, 90),
        }


class Ros2Node:
    """Tracks an instruction through a ROS 2 image topic (see the module docstring)."""

    def __init__(self, seg, config: NodeConfig) -> None:
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.seg = seg
        self.config = config
        self.stats = NodeStats()
        self._msgtype = COMPRESSED_IMAGE if config.compressed else IMAGE
        self._dp = DomainParticipant(config.domain_id) if config.domain_id is not None else DomainParticipant()
        image_type = wire.TYPES[self._msgtype]
        dp = self._dp
        self._images = DataReader(dp, Topic(dp, wire.dds_topic(config.image_topic), image_type), qos=wire.SENSOR_QOS)
        text_topic = Topic(dp, wire.dds_topic(config.text_topic), wire.String)
        self._texts = DataReader(dp, text_topic, qos=wire.COMMAND_QOS)
        self._masks = DataWriter(dp, Topic(dp, wire.dds_topic(config.mask_topic), wire.Image), qos=wire.RESULT_QOS)
        result_topic = Topic(dp, wire.dds_topic(config.result_topic), wire.String)
        self._results = DataWriter(dp, result_topic, qos=wire.RESULT_QOS)
        marks = Topic(dp, wire.dds_topic(config.annotations_topic), wire.ImageAnnotations)
        self._annotations = DataWriter(dp, marks, qos=wire.RESULT_QOS)
        self._waitset = WaitSet(dp)
        any_state = SampleState.Any | ViewState.Any | InstanceState.Any
        for reader in (self._images, self._texts):
            self._waitset.attach(ReadCondition(reader, any_state))
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segzero-node-reason")
        self._pending: Future | None = None
        self._next_text: str | None = config.text
        self._text_lock = threading.Lock()
        self._track = None
        self.text: str | None = None  # the instruction of the running track

    # -- control -------------------------------------------------------------------------------------
    def set_text(self, text: str) -> None:
        """Track ``text`` from the next frame on (reasoned in the background)."""
        if not text or not text.strip():
            raise InputError("the instruction is empty")
        with self._text_lock:
            self._next_text = text

    def stop(self) -> None:
        self._stop.set()

    # -- loop ----------------------------------------------------------------------------------------
    def spin(self, stop: threading.Event | None = None) -> NodeStats:
        """Run until ``stop`` (or ``self.stop()``) is set or ``max_frames`` were published."""
        from cyclonedds.util import duration

        stop = stop or self._stop
        c = self.config
        outs = f"{c.mask_topic}, {c.result_topic}, {c.annotations_topic}"
        log.info("node: %s (%s) -> %s; instruction topic %s", c.image_topic, self._msgtype, outs, c.text_topic)
        next_log = time.monotonic() + LOG_EVERY_S
        try:
            while not (stop.is_set() or self._stop.is_set()):
                if time.monotonic() >= next_log:
                    log.info("node: %s", self.stats.summary())
                    next_log += LOG_EVERY_S
                if self.config.max_frames is not None and self.stats.published >= self.config.max_frames:
                    break
                self._waitset.wait(duration(milliseconds=100))
                self._poll_text()
                samples = wire.valid(self._images.take(N=64))
                if not samples:
                    continue
                t_take = time.perf_counter()
                self.stats.received += len(samples)
                self.stats.dropped += len(samples) - 1
                self._frame(samples[-1], t_take)
        finally:
            self.close()
        return self.stats

    def _poll_text(self) -> None:
        for msg in wire.valid(self._texts.take(N=16)):
            try:
                self.set_text(msg.data)
                log.info("node: new instruction %r", msg.data)
            except InputError as exc:
                log.warning("node: ignored an instruction: %s", exc.message)

    def _frame(self, msg, t_take: float) -> None:
        try:
            rgb = to_rgb(msg, self._msgtype)
        except InputError as exc:
            log.warning("node: dropped a frame: %s", exc.message)
            self.stats.dropped += 1
            return
        self._start_reasoning(rgb)
        self._adopt_ready_track()
        if self._track is None:
            self.stats.waiting += 1
            return
        try:
            res = self._track.update(rgb)
        except SegZeroError as exc:  # e.g. the camera changed its resolution: start a new track
            log.warning("node: %s; reasoning again from the next frame", exc.message)
            self._track.close()
            self._track = None
            with self._text_lock:
                self._next_text = self._next_text or self.text
            self.stats.waiting += 1
            return
        self._publish(msg, rgb, res, t_take)

    def _start_reasoning(self, rgb: np.ndarray) -> None:
        with self._text_lock:
            text, self._next_text = self._next_text, None
        if text is None:
            return
        if self._pending is not None:  # one reasoning at a time: the newest instruction waits its turn
            with self._text_lock:
                self._next_text = self._next_text or text
            return
        seg, k = self.seg, self.config.reason_after_lost
        self._pending = self._pool.submit(lambda: (text, seg.track(rgb, text, reason_after_lost=k)))

    def _adopt_ready_track(self) -> None:
        if self._pending is None or not self._pending.done():
            return
        future, self._pending = self._pending, None
        try:
            text, track = future.result()
        except SegZeroError as exc:
            log.warning("node: reasoning failed: %s", exc.message)
            return
        if self._track is not None:
            self._track.close()
        self._track, self.text = track, text
        log.info("node: tracking %r (%d object(s))", text, track.num_objects)

    def _publish(self, msg, rgb: np.ndarray, res, t_take: float) -> None:
        h, w = rgb.shape[:2]
        stamp, frame_id = stamp_of(msg), str(msg.header.frame_id)
        masks = np.stack([o.mask for o in res.objects]) if res.objects else np.zeros((0, h, w), bool)
        self._masks.write(wire.image_message(stamp, frame_id, mask_fields(mask_image(masks, (w, h)))))
        self._results.write(wire.String(result_json(res, stamp=stamp, frame_id=frame_id, frame=res.frame_index)))
        self._annotations.write(wire.annotations_message(image_annotations(res, stamp)))
        now = time.perf_counter()
        self.stats.published += 1
        self.stats.latency_ms.append((now - t_take) * 1e3)
        self.stats.age_ms.append((time.time() - (stamp[0] + stamp[1] * 1e-9)) * 1e3)

    def close(self) -> None:
        """Stop the background reasoning and the track (the DDS entities go with the participant)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._track is not None:
            self._track.close()
            self._track = None
        if self._pending is not None and self._pending.done() and self._pending.exception() is None:
            self._pending.result()[1].close()
        self._pending = None
