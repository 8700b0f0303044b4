"""Image messages <-> numpy, and our DDS types against an independent ROS 2 CDR implementation (rosbags)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from segzero_edge.errors import InputError
from segzero_edge.ros.messages import COMPRESSED_IMAGE, IMAGE, mask_image, to_rgb

rosbags = pytest.importorskip("rosbags", reason="needs the ros extra (rosbags)")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

TS = get_typestore(Stores.ROS2_HUMBLE)
Image = TS.types[IMAGE]
Compressed = TS.types[COMPRESSED_IMAGE]
Header = TS.types["std_msgs/msg/Header"]
Time = TS.types["builtin_interfaces/msg/Time"]
HDR = Header(stamp=Time(sec=12, nanosec=34), frame_id="cam")
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0) -> object:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    step = rows.shape[1] + pad
    data = np.zeros((h, step), np.uint8)
    data[:, : rows.shape[1]] = rows
    data[:, rows.shape[1] :] = 77  # padding bytes must be ignored
    return Image(header=HDR, height=h, width=w, encoding=encoding, is_bigendian=0, step=step, data=data.reshape(-1))


@pytest.mark.parametrize("pad", [0, 3])
def test_every_supported_encoding_gives_the_same_rgb(pad):
    alpha = np.full((5, 7, 1), 200, np.uint8)
    gray = RGB[..., :1]
    assert np.array_equal(to_rgb(_image(RGB, "rgb8", pad), IMAGE), RGB)
    assert np.array_equal(to_rgb(_image(RGB[..., ::-1], "bgr8", pad), IMAGE), RGB)
    assert np.array_equal(to_rgb(_image(np.concatenate([RGB, alpha], 2), "rgba8", pad), IMAGE), RGB)
    assert np.array_equal(to_rgb(_image(np.concatenate([RGB[..., ::-1], alpha], 2), "bgra8", pad), IMAGE), RGB)
    assert np.array_equal(to_rgb(_image(RGB[..., ::-1], "8UC3", pad), IMAGE), RGB)  # cv_bridge's reading
    assert np.array_equal(to_rgb(_image(gray, "mono8", pad), IMAGE), np.repeat(gray, 3, axis=2))


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        ("16UC1", "depth or 16-bit"),
        ("32FC1", "depth or 16-bit"),
        ("mono16", "depth or 16-bit"),
        ("bayer_rggb8", "debayer"),
        ("yuv422", "rgb8, bgr8"),
    ],
)
def test_unsupported_encodings_are_refused_with_what_to_do(encoding, says):
    msg = _image(np.zeros((2, 2, 2), np.uint8), encoding)
    with pytest.raises(InputError, match=encoding) as err:
        to_rgb(msg, IMAGE)
    assert says in str(err.value)


def test_truncated_or_inconsistent_images_are_refused():
    msg = _image(RGB, "rgb8")
    short = Image(header=HDR, height=5, width=7, encoding="rgb8", is_bigendian=0, step=21, data=msg.data[:-1])
    with pytest.raises(InputError, match="truncated"):
        to_rgb(short, IMAGE)
    narrow = Image(header=HDR, height=5, width=7, encoding="rgb8", is_bigendian=0, step=20, data=msg.data)
    with pytest.raises(InputError, match="step"):
        to_rgb(narrow, IMAGE)
    empty = Image(header=HDR, height=0, width=7, encoding="rgb8", is_bigendian=0, step=21, data=msg.data[:0])
    with pytest.raises(InputError, match="empty"):
        to_rgb(empty, IMAGE)
    with pytest.raises(InputError, match="not an image"):
        to_rgb(msg, "std_msgs/msg/String")


def test_compressed_images_decode_and_depth_or_garbage_is_refused():
    buf = io.BytesIO()
    PILImage.fromarray(RGB).save(buf, "PNG")
    png = Compressed(header=HDR, format="png", data=np.frombuffer(buf.getvalue(), np.uint8))
    assert np.array_equal(to_rgb(png, COMPRESSED_IMAGE), RGB)
    buf = io.BytesIO()
    PILImage.fromarray(RGB).save(buf, "JPEG", quality=95)
    jpeg = Compressed(header=HDR, format="rgb8; jpeg compressed bgr8", data=np.frombuffer(buf.getvalue(), np.uint8))
    assert to_rgb(jpeg, COMPRESSED_IMAGE).shape == (5, 7, 3)
    depth = Compressed(header=HDR, format="16UC1; compressedDepth png", data=png.data)
    with pytest.raises(InputError, match="depth"):
        to_rgb(depth, COMPRESSED_IMAGE)
    junk = Compressed(header=HDR, format="jpeg", data=np.arange(40, dtype=np.uint8))
    with pytest.raises(InputError, match="cannot decode"):
        to_rgb(junk, COMPRESSED_IMAGE)


def test_mask_image_labels_objects_and_a_later_object_wins():
    masks = np.zeros((2, 3, 4), bool)
    masks[0, 0, :2] = True
    masks[1, 0, 1:3] = True
    label = mask_image(masks, (4, 3))
    assert label.dtype == np.uint8 and label.shape == (3, 4)
    assert label[0].tolist() == [127, 255, 255, 0] and not label[1:].any()
    assert mask_image(masks[:1], (4, 3))[0, :2].tolist() == [255, 255]
    assert not mask_image(np.zeros((0, 3, 4), bool), (4, 3)).any()


def test_our_dds_types_serialise_exactly_as_ros2_cdr():
    """Byte-level agreement with rosbags' CDR serialiser, built from the ROS 2 .msg definitions: what a
    ROS 2 node (rmw_cyclonedds / rmw_fastrtps) puts on the wire for these types."""
    pytest.importorskip("cyclonedds", reason="needs the ros extra (cyclonedds)")
    from segzero_edge.ros import wire

    ours = wire.Image(wire.header((12, 34), "cam"), 5, 7, "rgb8", 0, 21, RGB.tobytes())
    theirs = Image(header=HDR, height=5, width=7, encoding="rgb8", is_bigendian=0, step=21, data=RGB.reshape(-1))
    assert ours.serialize() == bytes(TS.serialize_cdr(theirs, IMAGE))
    from cyclonedds.idl import IdlStruct

    for frame_id in ("", "c", "ca", "cam", "cam_"):  # every alignment of the fields before the pixel block
        msg = wire.Image(wire.header((1, 2), frame_id), 5, 7, "rgb8", 0, 21, RGB.tobytes())
        assert msg.serialize() == IdlStruct.serialize(msg)  # the one-block path = cyclonedds' generic one
    back = wire.Image.deserialize(bytes(TS.serialize_cdr(theirs, IMAGE)))
    assert np.array_equal(to_rgb(back, IMAGE), RGB) and back.header.frame_id == "cam"
    text = TS.types["std_msgs/msg/String"](data='{"a": 1}')
    assert wire.String('{"a": 1}').serialize() == bytes(TS.serialize_cdr(text, "std_msgs/msg/String"))
    comp = Compressed(header=HDR, format="png", data=np.arange(9, dtype=np.uint8))
    ours_c = wire.CompressedImage(wire.header((12, 34), "cam"), "png", bytes(range(9)))
    assert ours_c.serialize() == bytes(TS.serialize_cdr(comp, COMPRESSED_IMAGE))


@pytest.mark.parametrize("name", ["camera", "/a//b", "/a/b/", "/1cam", "/cam era", ""])
def test_topic_names_follow_ros2_rules(name):
    pytest.importorskip("cyclonedds", reason="needs the ros extra (cyclonedds)")
    from segzero_edge.ros.wire import dds_topic

    if name == "camera":
        assert dds_topic(name) == "rt/camera"
        return
    with pytest.raises(InputError, match="ROS 2 topic name"):
        dds_topic(name)


def _segmentation():
    from segzero_edge.types import ObjectMask, Segmentation

    mask = np.zeros((20, 30), bool)
    mask[5:10, 4:12] = True
    objects = (
        ObjectMask(mask, (4, 5, 12, 10), 0.91, 2.0, False, (3, 4, 13, 11), ((8.0, 7.0),)),
        ObjectMask(np.zeros((20, 30), bool), None, 0.2, -3.0, True),
    )
    return Segmentation(mask=mask, found=True, objects=objects)


def test_annotations_draw_each_objects_box_points_and_label():
    from segzero_edge.ros.annotations import LINE_LOOP, POINTS, image_annotations

    ann = image_annotations(_segmentation(), (12, 34))
    loop, dots = ann["points"]
    assert loop["type"] == LINE_LOOP and [(p["x"], p["y"]) for p in loop["points"]] == [
        (4, 5),
        (12, 5),
        (12, 10),
        (4, 10),
    ]
    assert dots["type"] == POINTS and [(p["x"], p["y"]) for p in dots["points"]] == [(8.0, 7.0)]
    assert [t["text"] for t in ann["texts"]] == ["1: 0.91", "2: lost"]  # a lost object gets its label only
    assert {p["timestamp"]["sec"] for p in ann["points"]} == {12} and ann["circles"] == []


def test_annotations_serialise_exactly_as_the_foxglove_msgs_definition():
    """Our DDS ImageAnnotations against rosbags' CDR for the message definition the MCAP writer embeds."""
    pytest.importorskip("cyclonedds", reason="needs the ros extra (cyclonedds)")
    from rosbags.typesys import get_types_from_msg

    from segzero_edge.ros import wire
    from segzero_edge.ros.annotations import IMAGE_ANNOTATIONS, MSGDEF, image_annotations

    ts = get_typestore(Stores.ROS2_HUMBLE)
    ts.register(get_types_from_msg(MSGDEF, IMAGE_ANNOTATIONS))
    fields = image_annotations(_segmentation(), (12, 34))

    def build(name: str, value):
        if isinstance(value, dict):
            cls = ts.types[name]
            kinds = {"timestamp": "builtin_interfaces/msg/Time", "position": "foxglove_msgs/msg/Point2"}
            out = {}
            for key, v in value.items():
                sub = kinds.get(key) or ("foxglove_msgs/msg/Color" if "color" in key else None)
                out[key] = build(sub, v) if isinstance(v, dict) else v
                if isinstance(v, list):
                    item = {"points": "foxglove_msgs/msg/Point2", "outline_colors": "foxglove_msgs/msg/Color"}
                    out[key] = [build(item.get(key, ""), x) for x in v]
            return cls(**out)
        return value

    theirs = ts.types[IMAGE_ANNOTATIONS](
        circles=[],
        points=[build("foxglove_msgs/msg/PointsAnnotation", p) for p in fields["points"]],
        texts=[build("foxglove_msgs/msg/TextAnnotation", t) for t in fields["texts"]],
    )
    assert wire.annotations_message(fields).serialize() == bytes(ts.serialize_cdr(theirs, IMAGE_ANNOTATIONS))
