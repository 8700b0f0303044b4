"""ROS 2 messages on the DDS wire through Cyclone DDS's Python binding (``cyclonedds``), without rclpy.

ROS 2's default middleware (``rmw_cyclonedds_cpp``; ``rmw_fastrtps`` speaks the same RTPS) maps a ROS
topic ``/a/b`` of type ``pkg/msg/T`` to the DDS topic ``rt/a/b`` of type ``pkg::msg::dds_::T_``, serialised as
plain CDR (XCDR1, little endian) with final extensibility. The dataclasses below declare exactly those
names and field layouts (from the ``.msg`` files of ROS 2 Humble..Jazzy, unchanged across them), so an
unmodified ROS 2 node sees our topics as its own. Cyclone DDS is the DDS ROS 2 ships by default and its
binding installs from PyPI with the C library inside (the alternative, Fast DDS, has no Python wheel).

QoS as a camera pipeline uses them (``rclcpp::SensorDataQoS`` and ``rclcpp::QoS(10)``):

* ``SENSOR_QOS``: best effort, volatile, keep last 5 (images in; matches reliable and best-effort cameras);
* ``RESULT_QOS``: reliable, volatile, keep last 10 (masks and results out; every subscriber matches it,
  including ``ros2 topic echo`` and RViz's defaults);
* ``COMMAND_QOS``: reliable, volatile, keep last 1 (the instruction topic, as ``ros2 topic pub`` sends).

Not tried against a ROS 2 install here (none can be installed from the package registries): the names,
layouts and QoS follow ROS 2's rules; ``docs/ros2.md`` says how to check with ``ros2 topic echo``.
"""

# No ``from __future__ import annotations``: cyclonedds resolves the field annotations at class creation.
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, missing_extra

try:  # the ``ros`` extra; this module is only imported by the live node
    from cyclonedds.idl import IdlStruct
    from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32
    from cyclonedds.internal import InvalidSample
    from cyclonedds.qos import Policy, Qos
    from cyclonedds.util import duration
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise missing_extra("the ROS 2 node", "ros", cause=exc) from exc

#: A Cyclone DDS configuration (the value of ``CYCLONEDDS_URI``) that keeps every participant of this machine
#: on the loopback interface, with unicast discovery on 127.0.0.1 (``lo`` has no multicast): what the tests
#: and the benchmark use, and a way to try a node and a replayed camera without touching the network.
LOOPBACK_CONFIG = (
    '<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="lo" multicast="false"/></Interfaces>'
    '<AllowMulticast>false</AllowMulticast></General><Discovery><Peers><Peer address="127.0.0.1"/></Peers>'
    "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>32</MaxAutoParticipantIndex></Discovery>"
    "</Domain></CycloneDDS>"
)

_NAME = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")


def dds_topic(ros_name: str) -> str:
    """``/camera/image_raw`` -> ``rt/camera/image_raw`` (a relative name is taken from the root).

    Raises:
        InputError: not a valid ROS 2 topic name (tokens of letters, digits and ``_``, not starting with
            a digit, separated by single ``/``).
    """
    name = ros_name if ros_name.startswith("/") else "/" + ros_name
    if not _NAME.match(name):
        raise InputError(
            f"{ros_name!r} is not a ROS 2 topic name",
            hint="use names like /camera/image_raw (letters, digits, _ and single slashes, no trailing /)",
        )
    return "rt" + name


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]

    def serialize(self, buffer=None, endianness=None, use_version_2=None) -> bytes:
        return _serialize_bytes_tail(self, buffer, endianness, use_version_2)


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header
    format: str
    data: sequence[uint8]

    def serialize(self, buffer=None, endianness=None, use_version_2=None) -> bytes:
        return _serialize_bytes_tail(self, buffer, endianness, use_version_2)


def _serialize_bytes_tail(msg, buffer, endianness, use_version_2) -> bytes:
    """XCDR1 of a message whose last field is ``data: uint8[]``, with ``data`` copied as one block.

    cyclonedds packs a ``sequence[uint8]`` one Python int at a time (21 ms for a 448 x 448 RGB frame on this
    CPU, 7 ms for its mono8 mask); a sequence of octets at the end of a struct is its length (uint32,
    aligned to 4, which the empty sequence's encoding already ends with) followed by the bytes, so the rest
    is serialised by cyclonedds with ``data`` empty and the block appended (0.06 ms). Byte-identical to the
    generic path (``tests/ros/test_messages.py`` compares both with rosbags' ROS 2 CDR).
    """
    if buffer is not None or endianness is not None or use_version_2:
        return IdlStruct.serialize(msg, buffer=buffer, endianness=endianness, use_version_2=use_version_2)
    data = msg.data if isinstance(msg.data, bytes) else bytes(msg.data)  # a list of ints, bytearray, ...
    head = IdlStruct.serialize(dataclasses.replace(msg, data=b""))
    little = head[1] & 1  # encapsulation id: CDR_BE 0x0000, CDR_LE 0x0001
    return head[:-4] + len(data).to_bytes(4, "little" if little else "big") + data


@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str


@dataclass
class Point2(IdlStruct, typename="foxglove_msgs::msg::dds_::Point2_"):
    x: float64
    y: float64


@dataclass
class Color(IdlStruct, typename="foxglove_msgs::msg::dds_::Color_"):
    r: float64
    g: float64
    b: float64
    a: float64


@dataclass
class CircleAnnotation(IdlStruct, typename="foxglove_msgs::msg::dds_::CircleAnnotation_"):
    timestamp: Time
    position: Point2
    diameter: float64
    thickness: float64
    fill_color: Color
    outline_color: Color


@dataclass
class PointsAnnotation(IdlStruct, typename="foxglove_msgs::msg::dds_::PointsAnnotation_"):
    timestamp: Time
    type: uint8
    points: sequence[Point2]
    outline_color: Color
    outline_colors: sequence[Color]
    fill_color: Color
    thickness: float64


@dataclass
class TextAnnotation(IdlStruct, typename="foxglove_msgs::msg::dds_::TextAnnotation_"):
    timestamp: Time
    position: Point2
    text: str
    font_size: float64
    text_color: Color
    background_color: Color


@dataclass
class ImageAnnotations(IdlStruct, typename="foxglove_msgs::msg::dds_::ImageAnnotations_"):
    circles: sequence[CircleAnnotation]
    points: sequence[PointsAnnotation]
    texts: sequence[TextAnnotation]


#: ROS type name -> DDS dataclass.
TYPES: dict[str, type] = {
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "std_msgs/msg/String": String,
    "foxglove_msgs/msg/ImageAnnotations": ImageAnnotations,
}

_XCDR1 = Policy.DataRepresentation(use_cdrv0_representation=True)
SENSOR_QOS = Qos(Policy.Reliability.BestEffort, Policy.Durability.Volatile, Policy.History.KeepLast(5), _XCDR1)
RESULT_QOS = Qos(
    Policy.Reliability.Reliable(duration(milliseconds=100)),
    Policy.Durability.Volatile,
    Policy.History.KeepLast(10),
    _XCDR1,
)
COMMAND_QOS = Qos(
    Policy.Reliability.Reliable(duration(milliseconds=100)),
    Policy.Durability.Volatile,
    Policy.History.KeepLast(1),
    _XCDR1,
)


def valid(samples: list) -> list:
    """The data samples of a ``take``: without the ``InvalidSample`` markers DDS delivers when a publisher
    goes away (its instance is disposed or unregistered), which carry no message."""
    return [s for s in samples if not isinstance(s, InvalidSample)]


def header(stamp: tuple[int, int], frame_id: str) -> Header:
    return Header(Time(int(stamp[0]), int(stamp[1])), frame_id)


def annotations_message(fields: dict[str, Any]) -> ImageAnnotations:
    """An ``ImageAnnotations`` from ``annotations.image_annotations``' nested dicts (points and texts)."""

    def time(d: dict) -> Time:
        return Time(d["sec"], d["nanosec"])

    def color(d: dict) -> Color:
        return Color(d["r"], d["g"], d["b"], d["a"])

    def point(d: dict) -> Point2:
        return Point2(d["x"], d["y"])

    points = [
        PointsAnnotation(
            time(p["timestamp"]),
            p["type"],
            [point(q) for q in p["points"]],
            color(p["outline_color"]),
            [color(c) for c in p["outline_colors"]],
            color(p["fill_color"]),
            p["thickness"],
        )
        for p in fields["points"]
    ]
    texts = [
        TextAnnotation(
            time(t["timestamp"]),
            point(t["position"]),
            t["text"],
            t["font_size"],
            color(t["text_color"]),
            color(t["background_color"]),
        )
        for t in fields["texts"]
    ]
    return ImageAnnotations([], points, texts)  # image_annotations draws no circles


def image_message(stamp: tuple[int, int], frame_id: str, fields: dict[str, Any]) -> Image:
    """An ``Image`` from ``messages.mask_fields``-style fields (``data`` as bytes)."""
    return Image(
        header(stamp, frame_id),
        fields["height"],
        fields["width"],
        fields["encoding"],
        fields["is_bigendian"],
        fields["step"],
        fields["data"],
    )
